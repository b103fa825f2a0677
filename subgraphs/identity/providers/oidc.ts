import { createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose';
import { isTokenFault } from '../../../platform/jwt.js';
import { invalidProviderToken, type ProviderIdentity, type ProviderVerifier } from './provider.js';

export interface OidcVerifierOptions {
  provider: 'GOOGLE' | 'MICROSOFT';
  jwksUrl: string;
  /** Expected `iss`; for Microsoft multi-tenant apps a template containing `{tenantid}`. */
  issuer: string;
  /** Our OAuth client id: the `aud` the token must carry. */
  audience: string;
  timeoutMs?: number;
}

const TENANT_PLACEHOLDER = '{tenantid}';


export function createOidcVerifier(options: OidcVerifierOptions): ProviderVerifier {
  // Created once: jose caches the key set and refetches it when a token names an unknown kid
  // (providers rotate keys), at most once per cooldown.
  const jwks = createRemoteJWKSet(new URL(options.jwksUrl), { timeoutDuration: options.timeoutMs ?? 5000 });
  const multiTenant = options.issuer.includes(TENANT_PLACEHOLDER);
  // Google documents that `iss` is either "https://accounts.google.com" or "accounts.google.com".
  const issuers =
    options.provider === 'GOOGLE' && options.issuer === 'https://accounts.google.com'
      ? [options.issuer, 'accounts.google.com']
      : [options.issuer];

  async function verifyToken(idToken: string): Promise<JWTPayload> {
    try {
      const { payload } = await jwtVerify(idToken, jwks, {
        // Multi-tenant Microsoft tokens carry the user's tenant in `iss`; checked below against `tid`.
        ...(multiTenant ? {} : { issuer: issuers }),
        audience: options.audience,
        algorithms: ['RS256', 'ES256'],
        requiredClaims: ['sub', 'iss', 'exp'],
        clockTolerance: 30, // small skew between the provider's clock and ours
      });
      return payload;
    } catch (error) {
      if (isTokenFault(error)) {
        throw invalidProviderToken(`The ${options.provider} sign-in token is not valid`, 'idToken');
      }
      throw new Error(`${options.provider} sign-in provider unavailable`, { cause: error });
    }
  }

  return {
    async verify(credentials): Promise<ProviderIdentity> {
      const idToken = credentials.idToken;
      if (!idToken) throw invalidProviderToken(`An idToken is required to sign in with ${options.provider}`, 'idToken');
      const payload = await verifyToken(idToken);
      if (multiTenant) {
        // Microsoft "common"/"organizations" endpoints: the issuer is per tenant, so substitute the
        // token's own `tid` and require an exact match (Microsoft identity platform, "Validate the issuer").
        const tid = payload['tid'];
        if (typeof tid !== 'string' || tid === '' || payload.iss !== options.issuer.replace(TENANT_PLACEHOLDER, tid)) {
          throw invalidProviderToken(`The ${options.provider} sign-in token has an unexpected issuer`, 'idToken');
        }
      }
      return toIdentity(options.provider, payload);
    },
  };
}

const str = (value: unknown): string | null => (typeof value === 'string' && value !== '' ? value : null);

function toIdentity(provider: 'GOOGLE' | 'MICROSOFT', payload: JWTPayload): ProviderIdentity {
  const base = { provider, subject: payload.sub as string, name: str(payload['name']) };
  if (provider === 'GOOGLE') {
    return { ...base, email: str(payload['email']), emailVerified: payload['email_verified'] === true };
  }
  // Microsoft: `email` is optional and unverified unless the optional `xms_edov` claim (email
  // domain owner verified) is true; `preferred_username` is a mutable UPN that may not even be an
  // email, so it is only a display fallback and never counts as verified.
  const email = str(payload['email']);
  if (email) return { ...base, email, emailVerified: payload['xms_edov'] === true };
  const username = str(payload['preferred_username']);
  return { ...base, email: username?.includes('@') ? username : null, emailVerified: false };
}
