import { createHmac, timingSafeEqual } from 'node:crypto';
import { assertValidContentType, assertValidKey, isValidKey } from './storage.js';

/**
 * What an upload token allows: one upload (`id`) of at most `maxBytes`, of one of
 * `contentTypes`, stored under `key`, before `expiresAt`.
 *
 * The token itself can be replayed until it expires. One-time use is enforced by whoever
 * consumes it: the upload row keyed by `id` is claimed (pending -> uploading) in the same
 * transaction that accepts the upload, and a second claim finds it taken.
 */
export interface UploadClaims {
  id: string;
  key: string;
  contentTypes: string[];
  maxBytes: number;
  expiresAt: Date;
}

export type UploadTokenFailure = 'malformed' | 'signature' | 'expired';

export class UploadTokenInvalid extends Error {
  constructor(readonly reason: UploadTokenFailure) {
    super(`Upload token is not valid (${reason})`);
    this.name = 'UploadTokenInvalid';
  }
}

/** The decoded payload: `expiresAt` in milliseconds since the epoch, `v` for the format. */
interface Payload {
  v: 1;
  id: string;
  key: string;
  contentTypes: string[];
  maxBytes: number;
  expiresAt: number;
}

const PAYLOAD_KEYS = ['contentTypes', 'expiresAt', 'id', 'key', 'maxBytes', 'v'];
// Distinct from the download-link domain: a value signed for one purpose is worthless for the other.
const SIGNATURE_DOMAIN = 'storyloom.upload.v1.';
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const MAX_TOKEN_LENGTH = 4096;

function assertSecret(secret: string): void {
  if (typeof secret !== 'string' || secret.length < 32) throw new TypeError('Upload token secret must be at least 32 characters');
}

function signatureOf(secret: string, encodedPayload: string): string {
  return createHmac('sha256', secret).update(SIGNATURE_DOMAIN + encodedPayload).digest('base64url');
}

function isValidPayload(value: unknown): value is Payload {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const payload = value as Record<string, unknown>;
  if (Object.keys(payload).sort().join(',') !== PAYLOAD_KEYS.join(',')) return false;
  return (
    payload.v === 1 &&
    typeof payload.id === 'string' &&
    payload.id.length > 0 &&
    payload.id.length <= 200 &&
    typeof payload.key === 'string' &&
    isValidKey(payload.key) &&
    Array.isArray(payload.contentTypes) &&
    payload.contentTypes.length > 0 &&
    payload.contentTypes.every((type) => typeof type === 'string' && type.length > 0 && type.length <= 200) &&
    Number.isSafeInteger(payload.maxBytes) &&
    (payload.maxBytes as number) > 0 &&
    Number.isSafeInteger(payload.expiresAt)
  );
}

/** `base64url(JSON) + '.' + base64url(HMAC-SHA256)`: compact enough for a query string. */
export function signUploadToken(secret: string, claims: UploadClaims): string {
  assertSecret(secret);
  assertValidKey(claims.key);
  for (const type of claims.contentTypes) assertValidContentType(type);
  const payload: Payload = {
    v: 1,
    id: claims.id,
    key: claims.key,
    contentTypes: [...claims.contentTypes],
    maxBytes: claims.maxBytes,
    expiresAt: claims.expiresAt.getTime(),
  };
  if (!isValidPayload(payload)) throw new TypeError('Upload token claims are not valid');
  const encoded = Buffer.from(JSON.stringify(payload)).toString('base64url');
  return `${encoded}.${signatureOf(secret, encoded)}`;
}

/** The claims of a token this secret signed that has not expired at `now`; UploadTokenInvalid otherwise. */
export function verifyUploadToken(secret: string, token: string, now: Date): UploadClaims {
  assertSecret(secret);
  if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH) throw new UploadTokenInvalid('malformed');
  const parts = token.split('.');
  const [encoded, signature] = parts;
  if (parts.length !== 2 || !encoded || !signature || !BASE64URL.test(encoded) || !BASE64URL.test(signature)) {
    throw new UploadTokenInvalid('malformed');
  }
  // Compared as strings of the canonical encoding: one signature has exactly one spelling, and
  // nothing from the payload is parsed before it is known to be ours.
  const expected = Buffer.from(signatureOf(secret, encoded));
  const given = Buffer.from(signature);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new UploadTokenInvalid('signature');

  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8'));
  } catch {
    throw new UploadTokenInvalid('malformed');
  }
  if (!isValidPayload(payload)) throw new UploadTokenInvalid('malformed');
  if (now.getTime() >= payload.expiresAt) throw new UploadTokenInvalid('expired');
  return {
    id: payload.id,
    key: payload.key,
    contentTypes: payload.contentTypes,
    maxBytes: payload.maxBytes,
    expiresAt: new Date(payload.expiresAt),
  };
}
