import { badInput, forbidden, userError } from '../../platform/errors.js';
import { isUuid } from '../../platform/formats.js';
import type { Caller, Role } from '../../platform/internal-auth.js';
import type { RefreshToken, User } from './identity.entities.js';

/**
 * Identity's rules as plain functions of input, state and clock (STYLE 2): no I/O, so each is
 * unit-tested directly and the service only loads, calls, and persists.
 */
const MIN_PASSWORD_LENGTH = 10;
/** Argon2 accepts any length; a cap keeps one request from costing seconds of hashing. */
const MAX_PASSWORD_LENGTH = 1024;
const MAX_NAME_LENGTH = 100;
const MAX_URL_LENGTH = 2048;
// Deliberately modest: one @, no spaces, a dot in the domain. Deliverability is proven by mail, not regex.
const EMAIL = /^[^\s@]{1,64}@[^\s@]+\.[^\s@.]{2,}$/;

export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

export function checkEmail(raw: string): string {
  const email = normalizeEmail(raw);
  if (email.length > 254 || !EMAIL.test(email)) throw userError('INVALID_EMAIL', 'Enter a valid email address', 'email');
  return email;
}

export function checkPassword(password: string): void {
  if (password.length < MIN_PASSWORD_LENGTH)
    throw userError('WEAK_PASSWORD', `Use at least ${MIN_PASSWORD_LENGTH} characters`, 'password');
  if (password.length > MAX_PASSWORD_LENGTH)
    throw userError('WEAK_PASSWORD', `Use at most ${MAX_PASSWORD_LENGTH} characters`, 'password');
}

export function checkDisplayName(raw: string): string {
  const name = raw.trim();
  if (!name || name.length > MAX_NAME_LENGTH)
    throw userError('INVALID_DISPLAY_NAME', `Display name must be 1 to ${MAX_NAME_LENGTH} characters`, 'displayName');
  return name;
}

/** A BCP 47 tag in canonical form (`pt-br` -> `pt-BR`). */
export function checkLocale(raw: string): string {
  try {
    const [canonical] = Intl.getCanonicalLocales(raw.trim());
    if (canonical) return canonical;
  } catch {
    // RangeError: not a well-formed tag
  }
  throw userError('INVALID_LOCALE', 'Locale must be a BCP 47 language tag such as en or pt-BR', 'locale');
}

export function checkAvatarUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw userError('INVALID_AVATAR_URL', 'Avatar URL must be an absolute http(s) URL', 'avatarUrl');
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || raw.length > MAX_URL_LENGTH)
    throw userError('INVALID_AVATAR_URL', 'Avatar URL must be an absolute http(s) URL', 'avatarUrl');
  return url.toString();
}

/**
 * The roles a session carries. ADMIN_EMAILS makes an account admin only once its address is
 * verified: otherwise whoever registered `boss@…` first, with a password, would be admin.
 * Evaluated at each sign-in, so a change of ADMIN_EMAILS takes effect at the next one.
 */
export function rolesOf(user: Pick<User, 'role' | 'email' | 'emailVerified'>, adminEmails: readonly string[]): Role[] {
  const admin = user.role === 'ADMIN' || (user.emailVerified && adminEmails.includes(user.email));
  return admin ? ['USER', 'ADMIN'] : ['USER'];
}

/**
 * Guest sessions are issued to a subgraph acting for itself (SERVICE: collaboration, once an
 * invitee accepted), never to a person: the gateway drops SERVICE from every token, so no
 * request through it gets here. Both ids are UUIDs: the gateway accepts a guest token only
 * with `collaboration:<uuid>`, so another template id would make a token nobody can use.
 */
export function checkGuestSessionRequest(caller: Caller, participantId: string, templateId: string): void {
  if (!caller.roles.includes('SERVICE')) throw forbidden('Guest sessions are issued to subgraphs only');
  if (!isUuid(participantId)) throw badInput('participantId is not a participant id', 'participantId');
  if (!isUuid(templateId)) throw badInput('templateId is not a template id', 'templateId');
}

export interface ProfileChanges {
  displayName?: string | null;
  avatarUrl?: string | null;
  locale?: string | null;
}

/** Validates a profile update; returns only the fields that really change. */
export function profileUpdate(user: User, input: ProfileChanges): Partial<Pick<User, 'displayName' | 'avatarUrl' | 'locale'>> {
  const next: Partial<Pick<User, 'displayName' | 'avatarUrl' | 'locale'>> = {};
  if (input.displayName != null) next.displayName = checkDisplayName(input.displayName);
  // avatarUrl: "" clears it; null/absent leaves it as it is.
  if (input.avatarUrl != null) next.avatarUrl = input.avatarUrl === '' ? null : checkAvatarUrl(input.avatarUrl);
  if (input.locale != null) next.locale = checkLocale(input.locale);
  for (const key of Object.keys(next) as (keyof typeof next)[]) if (next[key] === user[key]) delete next[key];
  return next;
}

export type RefreshDecision = 'rotate' | 'reuse' | 'expired' | 'revoked';

/**
 * What presenting this refresh token means. A token already rotated is a replay: either the
 * legitimate client or a thief holds a newer one, and we cannot tell which, so the caller
 * revokes the whole family (OAuth 2.0 Security BCP, refresh token rotation).
 */
export function refreshDecision(token: Pick<RefreshToken, 'expiresAt' | 'rotatedAt' | 'revokedAt'>, now: Date): RefreshDecision {
  if (token.revokedAt) return 'revoked';
  if (token.rotatedAt) return 'reuse';
  if (token.expiresAt.getTime() <= now.getTime()) return 'expired';
  return 'rotate';
}
