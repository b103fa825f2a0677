import { sendJson } from '../../platform/http/graphql-http.js';
import { JWKS_PATH } from '../../platform/jwt.js';
import type { SubgraphModule } from '../../platform/subgraph/module.js';
import { AccountService } from './accounts.service.js';
import { DeletionRetries } from './deletion.retries.js';
import { deletionConsumer } from './identity.consumer.js';
import { identityEntities } from './identity.entities.js';
import { identityResolvers } from './identity.resolvers.js';
import { identityMigrations } from './migrations/index.js';
import { prepareDecoy } from './passwords.js';
import { ProviderSignInService } from './provider-signin.service.js';
import { providersConfig } from './providers/config.js';
import { createProviderVerifiers } from './providers/index.js';
import { pruneRefreshTokens, SessionService } from './sessions.service.js';
import { AccessTokens } from './tokens.js';

export { JWKS_PATH };

/** Identity: accounts, sessions, sign-in providers, the key that signs access tokens, and the saga that deletes accounts. */
export const identity: SubgraphModule = {
  name: 'identity',
  entities: identityEntities,
  migrations: identityMigrations,
  async build({ config, orm, logger, onEventsCommitted }) {
    await prepareDecoy();
    const tokens = await AccessTokens.load(orm, {
      issuer: config.JWT_ISSUER,
      audience: config.JWT_AUDIENCE,
      ttlSeconds: config.ACCESS_TOKEN_TTL_SECONDS,
      guestTtlSeconds: config.GUEST_SESSION_TTL_SECONDS,
    });
    const sessions = new SessionService(tokens, { refreshTtlSeconds: config.REFRESH_TOKEN_TTL_SECONDS, adminEmails: config.ADMIN_EMAILS });
    const accounts = new AccountService(sessions);
    const providers = new ProviderSignInService(createProviderVerifiers(providersConfig(config)), accounts);
    const retries = new DeletionRetries({ orm, logger, retryMs: config.IDENTITY_DELETION_RETRY_MS, onEventsCommitted });
    // Every refresh leaves a row behind; ended sign-ins are cleared hourly.
    let pruning: NodeJS.Timeout | null = null;
    const prune = () =>
      pruneRefreshTokens(orm.em.fork()).then(
        (deleted) => deleted && logger.info({ deleted }, 'pruned ended refresh tokens'),
        (error: unknown) => logger.warn({ err: error }, 'could not prune refresh tokens'),
      );
    return {
      resolvers: identityResolvers({ accounts, sessions, providers, tokens, adminEmails: config.ADMIN_EMAILS }),
      consumers: [deletionConsumer],
      async start() {
        await prune();
        pruning = setInterval(prune, 3600_000).unref();
        retries.start();
      },
      async stop() {
        if (pruning) clearInterval(pruning);
        await retries.stop();
      },
      routes: {
        [JWKS_PATH]: (_req, res) => sendJson(res, 200, tokens.jwks(), { 'cache-control': 'public, max-age=300' }),
      },
    };
  },
};
