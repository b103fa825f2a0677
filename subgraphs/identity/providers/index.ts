import { createFacebookVerifier } from './facebook.js';
import { createOidcVerifier } from './oidc.js';
import type { ProviderName, ProviderVerifier } from './provider.js';

export type { ProviderCredentials, ProviderIdentity, ProviderName, ProviderVerifier } from './provider.js';

/** Every URL, issuer and audience is configuration so tests can point at loopback fakes. */
export interface ProvidersConfig {
  google?: { clientId: string; jwksUrl: string; issuer: string };
  /** issuer may contain `{tenantid}` for multi-tenant apps (the token's `tid` is substituted). */
  microsoft?: { clientId: string; jwksUrl: string; issuer: string };
  facebook?: { appId: string; appSecret: string; graphUrl: string };
}

/** One verifier per configured provider; an absent one is reported as PROVIDER_NOT_CONFIGURED by the caller. */
export function createProviderVerifiers(config: ProvidersConfig): Partial<Record<ProviderName, ProviderVerifier>> {
  const verifiers: Partial<Record<ProviderName, ProviderVerifier>> = {};
  if (config.google) {
    const { clientId, jwksUrl, issuer } = config.google;
    verifiers.GOOGLE = createOidcVerifier({ provider: 'GOOGLE', jwksUrl, issuer, audience: clientId });
  }
  if (config.microsoft) {
    const { clientId, jwksUrl, issuer } = config.microsoft;
    verifiers.MICROSOFT = createOidcVerifier({ provider: 'MICROSOFT', jwksUrl, issuer, audience: clientId });
  }
  if (config.facebook) verifiers.FACEBOOK = createFacebookVerifier(config.facebook);
  return verifiers;
}
