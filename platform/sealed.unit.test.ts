import { describe, expect, it } from 'vitest';
import { FOR_NOTIFICATION, SealError, seal, unseal } from './sealed.js';

const secret = 'a'.repeat(40);

describe('sealed values', () => {
  it('open with the same secret and purpose, and do not show the text', () => {
    const sealed = seal(secret, FOR_NOTIFICATION, 'https://app.example/invite/abc');
    expect(sealed).not.toContain('invite');
    expect(unseal(secret, FOR_NOTIFICATION, sealed)).toBe('https://app.example/invite/abc');
  });

  it('differ each time (random IV)', () => {
    expect(seal(secret, FOR_NOTIFICATION, 'x')).not.toBe(seal(secret, FOR_NOTIFICATION, 'x'));
  });

  it('refuse another secret, another purpose, an altered or malformed value', () => {
    const sealed = seal(secret, FOR_NOTIFICATION, 'https://app.example/invite/abc');
    expect(() => unseal('b'.repeat(40), FOR_NOTIFICATION, sealed)).toThrow(SealError);
    expect(() => unseal(secret, 'other.purpose', sealed)).toThrow(SealError);
    const [v, iv, body] = sealed.split('.');
    const flipped = Buffer.from(body!, 'base64url');
    flipped[0] = flipped[0]! ^ 1;
    expect(() => unseal(secret, FOR_NOTIFICATION, [v, iv, flipped.toString('base64url')].join('.'))).toThrow(SealError);
    for (const bad of ['', 'v1', 'v1..', 'v2.a.b', `${sealed}.x`]) expect(() => unseal(secret, FOR_NOTIFICATION, bad)).toThrow(SealError);
  });
});
