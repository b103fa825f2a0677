import type { ApolloServerPlugin } from '@apollo/server';
import type { Logger } from '../platform/log.js';
import type { GatewayContext } from './gateway.js';

/** One structured line per GraphQL request: what ran, for whom, how it ended, how long it took. */
export function accessLog(logger: Logger): ApolloServerPlugin<GatewayContext> {
  return {
    // A request whose context could not be built (identity's keys unreachable) never starts.
    async contextCreationDidFail({ error }) {
      logger.warn({ err: error }, 'graphql request refused before execution');
    },
    async requestDidStart({ contextValue }) {
      const started = performance.now();
      return {
        async willSendResponse({ request, response, errors }) {
          logger.info(
            {
              correlationId: contextValue.correlationId,
              userId: contextValue.caller.userId,
              // A guest has no userId; without this its requests would read as anonymous.
              ...(contextValue.caller.guest ? { guest: contextValue.caller.guest } : {}),
              operation: request.operationName ?? null,
              status: response.http.status ?? 200,
              errors: errors?.map((e) => e.extensions?.code ?? 'INTERNAL_SERVER_ERROR'),
              ms: Math.round((performance.now() - started) * 10) / 10,
            },
            'graphql request',
          );
        },
      };
    },
  };
}
