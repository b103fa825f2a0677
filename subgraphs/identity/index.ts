import type { Config } from '../../platform/config.js';
import { sendJson } from '../../platform/http/graphql-http.js';
import type { SubgraphModule } from '../../platform/subgraph/module.js';
import { AccountService } from './accounts.service.js';
import { identityEntities } from './identity.entities.js';
import { identityResolvers } from './identity.resolvers.js';
import { identityMigrations } from './migrations/index.js';
import { ProviderSignInService } from './provider-signin.service.js';
import { createProviderVerifiers, type ProvidersConfig } from './providers/index.js';
import { SessionService } from './sessions.service.js';
import { AccessTokens } from './tokens.js';

export const JWKS_PATH = '/.well-known/jwks.json';

/** Which sign-in providers are on: each needs its client id (or app id and secret). */
export function providersConfig(config: Config): ProvidersConfig {
  const microsoftIssuer = config.MICROSOFT_ISSUER ?? `https://login.microsoftonline.com/${config.MICROSOFT_TENANT === 'common' ? '{tenantid}' : config.MICROSOFT_TENANT}/v2.0`;
  return {
    ...(config.GOOGLE_CLIENT_ID && {
      google: { clientId: config.GOOGLE_CLIENT_ID, jwksUrl: config.GOOGLE_JWKS_URL, issuer: config.GOOGLE_ISSUER },
    }),
    ...(config.MICROSOFT_CLIENT_ID && {
      microsoft: {
        clientId: config.MICROSOFT_CLIENT_ID,
        jwksUrl: config.MICROSOFT_JWKS_URL ?? `https://login.microsoftonline.com/${config.MICROSOFT_TENANT}/discovery/v2.0/keys`,
        issuer: microsoftIssuer,
      },
    }),
    ...(config.FACEBOOK_APP_ID &&
      config.FACEBOOK_APP_SECRET && {
        facebook: { appId: config.FACEBOOK_APP_ID, appSecret: config.FACEBOOK_APP_SECRET, graphUrl: config.FACEBOOK_GRAPH_URL },
      }),
  };
}

/** Identity: accounts, sessions, sign-in providers, and the key that signs access tokens. */
export const identity: SubgraphModule = {
  name: 'identity',
  entities: identityEntities,
  migrations: identityMigrations,
  async build({ config, orm }) {
    const tokens = await AccessTokens.load(orm, {
      issuer: config.JWT_ISSUER,
      audience: config.JWT_AUDIENCE,
      ttlSeconds: config.ACCESS_TOKEN_TTL_SECONDS,
    });
    const sessions = new SessionService(tokens, { refreshTtlSeconds: config.REFRESH_TOKEN_TTL_SECONDS, adminEmails: config.ADMIN_EMAILS });
    const accounts = new AccountService(sessions);
    const providers = new ProviderSignInService(createProviderVerifiers(providersConfig(config)), accounts);
    return {
      resolvers: identityResolvers({ accounts, sessions, providers }),
      routes: {
        [JWKS_PATH]: (_req, res) => sendJson(res, 200, tokens.jwks(), { 'cache-control': 'public, max-age=300' }),
      },
    };
  },
};
