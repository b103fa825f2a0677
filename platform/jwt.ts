import { errors } from 'jose';
import { isUuid } from './formats.js';

/**
 * jose errors that mean "this token is bad": the caller's fault. Anything else (JWKS timeout,
 * fetch failure, a non-200 or unparseable key set) is the issuer's or the network's fault, and
 * must not be reported as a bad token.
 */
const TOKEN_FAULTS = new Set<string>([
  errors.JWSInvalid.code,
  errors.JWTInvalid.code,
  errors.JWTExpired.code,
  errors.JWTClaimValidationFailed.code,
  errors.JOSEAlgNotAllowed.code,
  errors.JOSENotSupported.code, // e.g. an unknown `crit` header parameter in the token
  errors.JWSSignatureVerificationFailed.code,
  errors.JWKSNoMatchingKey.code, // signed by a key the issuer never published
  errors.JWKSMultipleMatchingKeys.code,
]);

export function isTokenFault(error: unknown): error is errors.JOSEError {
  return error instanceof errors.JOSEError && TOKEN_FAULTS.has(error.code);
}

/**
 * The `scope` claim of a guest session's token, written by identity and read by the gateway
 * here in one place so the two cannot drift: the one roleplay template the guest may act in.
 */
export const guestScope = (templateId: string): string => `collaboration:${templateId}`;

/** The template a guest token's `scope` names, or null unless it is exactly `collaboration:<uuid>`. */
export function templateOfGuestScope(scope: unknown): string | null {
  if (typeof scope !== 'string' || !scope.startsWith('collaboration:')) return null;
  const templateId = scope.slice('collaboration:'.length);
  return isUuid(templateId) ? templateId : null;
}

/** Where identity publishes its signing keys (JWKS): the gateway verifies access tokens with them. */
export const JWKS_PATH = '/.well-known/jwks.json';
