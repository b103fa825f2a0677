import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Invitation tokens: 256 random bits, base64url (43 characters), shown once in the invite URL.
 * Only their SHA-256 is stored, so the database cannot hand out working links; a token is
 * found by its hash, and the hashes are compared again in constant time.
 */
export function newInvitationToken(): { token: string; hash: string } {
  const token = randomBytes(32).toString('base64url');
  return { token, hash: hashOf(token) };
}

export function hashOf(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Whether `token` could be a token at all: anything else is not looked up. */
export const looksLikeToken = (token: string) => /^[A-Za-z0-9_-]{43}$/.test(token);

export function matches(token: string, storedHash: string): boolean {
  const given = Buffer.from(hashOf(token), 'hex');
  const stored = Buffer.from(storedHash, 'hex');
  return given.length === stored.length && timingSafeEqual(given, stored);
}
