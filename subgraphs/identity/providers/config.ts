import type { Config } from '../../../platform/config.js';
import type { ProvidersConfig } from './index.js';

/** Microsoft's fixed tenant id of personal accounts, which `consumers` tokens carry as issuer. */
const MICROSOFT_CONSUMERS_TENANT = '9188040d-6c67-4c5b-b112-36a304b66dad';

/**
 * The issuer Microsoft tokens carry for a configured tenant. `common` and `organizations`
 * accept users of many tenants, so the issuer holds the user's own tenant (`{tenantid}`,
 * checked against the token's `tid`); `consumers` tokens come from one fixed tenant.
 */
export function microsoftIssuer(tenant: string): string {
  const id = tenant === 'common' || tenant === 'organizations' ? '{tenantid}' : tenant === 'consumers' ? MICROSOFT_CONSUMERS_TENANT : tenant;
  return `https://login.microsoftonline.com/${id}/v2.0`;
}

/** Which sign-in providers are on: each needs its client id (or app id and secret). */
export function providersConfig(config: Config): ProvidersConfig {
  return {
    ...(config.GOOGLE_CLIENT_ID && {
      google: { clientId: config.GOOGLE_CLIENT_ID, jwksUrl: config.GOOGLE_JWKS_URL, issuer: config.GOOGLE_ISSUER },
    }),
    ...(config.MICROSOFT_CLIENT_ID && {
      microsoft: {
        clientId: config.MICROSOFT_CLIENT_ID,
        jwksUrl: config.MICROSOFT_JWKS_URL ?? `https://login.microsoftonline.com/${config.MICROSOFT_TENANT}/discovery/v2.0/keys`,
        issuer: config.MICROSOFT_ISSUER ?? microsoftIssuer(config.MICROSOFT_TENANT),
      },
    }),
    ...(config.FACEBOOK_APP_ID &&
      config.FACEBOOK_APP_SECRET && {
        facebook: { appId: config.FACEBOOK_APP_ID, appSecret: config.FACEBOOK_APP_SECRET, graphUrl: config.FACEBOOK_GRAPH_URL },
      }),
  };
}
