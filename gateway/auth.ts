import { createRemoteJWKSet, errors, jwtVerify } from 'jose';
import { GraphQLError } from 'graphql';
import { ANONYMOUS, type Caller, type Role } from '../platform/internal-auth.js';
import { isTokenFault, templateOfGuestScope } from '../platform/jwt.js';

export interface TokenVerifierOptions {
  jwksUrl: string;
  issuer: string;
  audience: string;
  /**
   * Least time between two fetches of the key set. A token naming an unknown key id (identity
   * rotated its key) triggers a refetch, but never more often than this, so a flood of forged
   * key ids cannot hammer identity. Default 30 s.
   */
  jwksCooldownMs?: number;
}

const refused = (reason: string): Caller => ({ ...ANONYMOUS, authError: reason });
const INVALID = 'The access token is invalid';

/**
 * The roles a token may grant. SERVICE is never one of them: it is what a subgraph calling
 * another for itself sets, so a token claiming it (forged or minted by mistake) must not
 * reach a subgraph as a service.
 */
const TOKEN_ROLES: ReadonlySet<Role> = new Set<Role>(['USER', 'ADMIN', 'GUEST']);

/**
 * The caller a verified token's claims make. A GUEST token (identity's issueGuest) is a
 * participant of one template, not a user: userId stays null, so everything that needs an
 * account refuses it as it refuses an anonymous caller, and only what reads `guest` lets it in.
 * It is refused unless it is only GUEST and names exactly one template, so a token can never
 * be a user and a guest at once, nor a guest of everything.
 */
function callerOfClaims(sub: string, claimedRoles: unknown, scope: unknown): Caller {
  const roles = Array.isArray(claimedRoles) ? (claimedRoles.filter((r) => TOKEN_ROLES.has(r as Role)) as Role[]) : [];
  if (!roles.includes('GUEST')) return { userId: sub, roles };
  const templateId = templateOfGuestScope(scope);
  if (roles.some((r) => r !== 'GUEST') || !templateId) return refused(INVALID);
  return { userId: null, roles: ['GUEST'], guest: { participantId: sub, templateId } };
}

/**
 * Turns `Authorization: Bearer <jwt>` into the caller, verified against identity's JWKS.
 * A missing, malformed, expired or forged token leaves the caller anonymous with the reason
 * attached: the request still runs (so a client holding a stale token can refresh or log in),
 * and whatever needs a user answers UNAUTHENTICATED with that reason. When identity's keys
 * cannot be fetched, that is our outage, not the caller's fault: the request fails with 503.
 */
export function createTokenVerifier(options: TokenVerifierOptions) {
  const jwks = createRemoteJWKSet(new URL(options.jwksUrl), {
    cooldownDuration: options.jwksCooldownMs ?? 30_000,
    cacheMaxAge: 10 * 60_000,
    timeoutDuration: 5_000,
  });
  return async function callerOf(authorization: string | undefined): Promise<Caller> {
    if (!authorization) return ANONYMOUS;
    const match = /^Bearer\s+(\S+)$/i.exec(authorization.trim());
    if (!match) return refused('Authorization must be "Bearer <access token>"');
    try {
      const { payload } = await jwtVerify(match[1]!, jwks, {
        issuer: options.issuer,
        audience: options.audience,
        algorithms: ['ES256'],
        typ: 'at+jwt',
        requiredClaims: ['sub', 'exp'],
      });
      return callerOfClaims(payload.sub!, payload.roles, payload.scope);
    } catch (error) {
      if (error instanceof errors.JWTExpired) return refused('The access token has expired; refresh the session');
      if (isTokenFault(error)) return refused(INVALID);
      throw new GraphQLError('Access tokens cannot be verified right now', {
        originalError: error as Error,
        extensions: { code: 'SERVICE_UNAVAILABLE', http: { status: 503 } },
      });
    }
  };
}
