import { createHash, randomBytes } from 'node:crypto';

/**
 * Invitation tokens: 256 random bits, base64url (43 characters), shown once in the invite URL.
 * Only their SHA-256 is stored, so the database cannot hand out working links; a token is
 * found by its hash alone: the database compares hashes, which a caller cannot choose, so the
 * lookup's timing says nothing about any stored one.
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
