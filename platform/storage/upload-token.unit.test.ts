import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signUploadToken, UploadTokenInvalid, verifyUploadToken, type UploadClaims } from './upload-token.js';

const secret = randomBytes(32).toString('base64url');
const now = new Date('2026-03-01T10:00:00Z');
const claims: UploadClaims = {
  id: 'upl_01HZX',
  key: 'voice-samples/u1/upl_01HZX.wav',
  contentTypes: ['audio/wav', 'audio/mpeg'],
  maxBytes: 10 * 1024 * 1024,
  expiresAt: new Date('2026-03-01T10:15:00Z'),
};

/** A token over any payload, signed as upload-token.ts signs: what a leaked-format attacker with the secret could mint. */
function forge(payload: unknown, key = secret): string {
  const encoded = Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload)).toString('base64url');
  return `${encoded}.${createHmac('sha256', key).update(`storyloom.upload.v1.${encoded}`).digest('base64url')}`;
}

function reasonOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    if (error instanceof UploadTokenInvalid) return error.reason;
    throw error;
  }
  return undefined;
}

describe('upload tokens', () => {
  it('round-trips the claims', () => {
    const token = signUploadToken(secret, claims);
    expect(token).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
    expect(verifyUploadToken(secret, token, now)).toEqual(claims);
  });

  it('expires at expiresAt, not a millisecond later', () => {
    const token = signUploadToken(secret, claims);
    expect(verifyUploadToken(secret, token, new Date(claims.expiresAt.getTime() - 1)).id).toBe(claims.id);
    expect(reasonOf(() => verifyUploadToken(secret, token, claims.expiresAt))).toBe('expired');
  });

  it('refuses a token signed with another secret, or with its payload or signature changed', () => {
    const token = signUploadToken(secret, claims);
    const [payload, signature] = token.split('.') as [string, string];
    const bigger = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), maxBytes: 1e12 })).toString('base64url');
    expect(reasonOf(() => verifyUploadToken(randomBytes(32).toString('hex'), token, now))).toBe('signature');
    expect(reasonOf(() => verifyUploadToken(secret, `${bigger}.${signature}`, now))).toBe('signature');
    const flipped = (signature[0] === 'A' ? 'B' : 'A') + signature.slice(1);
    expect(reasonOf(() => verifyUploadToken(secret, `${payload}.${flipped}`, now))).toBe('signature');
    expect(reasonOf(() => verifyUploadToken(secret, `${payload}.${signature.slice(0, -1)}`, now))).toBe('signature');
  });

  it.each([
    ['no dot', 'abc'],
    ['three parts', 'a.b.c'],
    ['an empty part', '.abc'],
    ['non-base64url characters', 'ab+c.de/f'],
    ['an oversized token', `${'a'.repeat(5000)}.b`],
  ])('refuses a token with %s as malformed', (_, token) => {
    expect(reasonOf(() => verifyUploadToken(secret, token, now))).toBe('malformed');
  });

  const valid = { v: 1, id: 'u1', key: 'a/b.wav', contentTypes: ['audio/wav'], maxBytes: 10, expiresAt: claims.expiresAt.getTime() };
  it.each([
    ['JSON that does not parse', '{"v":1,'],
    ['an array', [valid]],
    ['an extra claim', { ...valid, admin: true }],
    ['a missing claim', { ...valid, maxBytes: undefined }],
    ['another version', { ...valid, v: 2 }],
    ['an empty id', { ...valid, id: '' }],
    ['a traversing key', { ...valid, key: '../etc/passwd' }],
    ['no content types', { ...valid, contentTypes: [] }],
    ['a non-string content type', { ...valid, contentTypes: [1] }],
    ['a fractional maxBytes', { ...valid, maxBytes: 1.5 }],
    ['a zero maxBytes', { ...valid, maxBytes: 0 }],
    ['a string expiry', { ...valid, expiresAt: '2026-03-01T10:15:00Z' }],
  ])('refuses a correctly signed payload with %s as malformed', (_, payload) => {
    expect(reasonOf(() => verifyUploadToken(secret, forge(payload), now))).toBe('malformed');
  });

  it('accepts the forge helper on a valid payload (so the cases above fail for their shape alone)', () => {
    const { v: _version, ...rest } = valid;
    expect(verifyUploadToken(secret, forge(valid), now)).toEqual({ ...rest, expiresAt: claims.expiresAt });
  });

  it('refuses to sign invalid claims or with a short secret', () => {
    expect(() => signUploadToken('short', claims)).toThrow(/32 characters/);
    expect(() => signUploadToken(secret, { ...claims, key: 'a/../b' })).toThrow(TypeError);
    expect(() => signUploadToken(secret, { ...claims, contentTypes: ['audio wav'] })).toThrow(TypeError);
    expect(() => signUploadToken(secret, { ...claims, contentTypes: [] })).toThrow(TypeError);
    expect(() => signUploadToken(secret, { ...claims, maxBytes: -1 })).toThrow(TypeError);
    expect(() => signUploadToken(secret, { ...claims, expiresAt: new Date(NaN) })).toThrow(TypeError);
  });
});
