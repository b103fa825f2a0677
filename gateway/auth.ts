import { createRemoteJWKSet, errors, jwtVerify } from 'jose';
import { GraphQLError } from 'graphql';
import { ANONYMOUS, type Caller, type Role } from '../platform/internal-auth.js';

export interface TokenVerifierOptions {
  jwksUrl: string;
  issuer: string;
  audience: string;
}

const unauthenticated = (message: string) =>
  new GraphQLError(message, { extensions: { code: 'UNAUTHENTICATED', http: { status: 401 } } });

/**
 * Verifies `Authorization: Bearer <jwt>` against identity's JWKS. jose caches the key set and
 * fetches it again when a token names an unknown key id (a key rotation), at most once per
 * cooldown so a flood of forged kids cannot hammer identity.
 */
export function createTokenVerifier(options: TokenVerifierOptions) {
  const jwks = createRemoteJWKSet(new URL(options.jwksUrl), { cooldownDuration: 30_000, cacheMaxAge: 10 * 60_000, timeoutDuration: 5_000 });
  return async function callerOf(authorization: string | undefined): Promise<Caller> {
    if (!authorization) return ANONYMOUS;
    const match = /^Bearer\s+(\S+)$/i.exec(authorization.trim());
    if (!match) throw unauthenticated('Authorization must be "Bearer <access token>"');
    try {
      const { payload } = await jwtVerify(match[1]!, jwks, {
        issuer: options.issuer,
        audience: options.audience,
        algorithms: ['ES256'],
        typ: 'at+jwt',
        requiredClaims: ['sub', 'exp'],
      });
      const roles = Array.isArray(payload.roles) ? (payload.roles.filter((r) => typeof r === 'string') as Role[]) : [];
      return { userId: payload.sub!, roles };
    } catch (error) {
      if (error instanceof errors.JWTExpired) throw unauthenticated('The access token has expired; refresh the session');
      if (error instanceof errors.JOSEError) throw unauthenticated('The access token is invalid');
      // JWKS unreachable and the like: not the caller's fault.
      throw error;
    }
  };
}
