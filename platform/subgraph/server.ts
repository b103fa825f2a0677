import type { IncomingMessage, Server } from 'node:http';
import { ApolloServer } from '@apollo/server';
import { unwrapResolverError } from '@apollo/server/errors';
import { ApolloServerPluginCacheControl } from '@apollo/server/plugin/cacheControl';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { ApolloServerPluginInlineTraceDisabled, ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { buildSubgraphSchema } from '@apollo/subgraph';
import type { MikroORM } from '@mikro-orm/postgresql';
import { GraphQLError, type DocumentNode, type GraphQLFormattedError, type GraphQLScalarType } from 'graphql';
import { DomainError, toGraphQLError } from '../errors.js';
import type { OutboxRelay } from '../events/relay.js';
import { createHttpServer, type Handler } from '../http/server.js';
import { graphqlHandler, HttpRefusal } from '../http/graphql-http.js';
import { healthRoute, readyRoute, type ReadinessCheck } from '../http/probes.js';
import type { Metrics } from '../telemetry/metrics.js';
import { InternalAuthError, verifyCaller, type SignedOperation } from '../internal-auth.js';
import type { Logger } from '../log.js';
import { createSubgraphContext, type SubgraphContext } from './context.js';

/**
 * A subgraph's resolver map: scalars, and per type its field resolvers (plus
 * `__resolveReference` for entities). @apollo/subgraph types its map with an `unknown` context
 * and does not export it from the package root, hence this local shape and the cast below.
 */
export interface Resolvers {
  [typeName: string]: GraphQLScalarType | { [field: string]: (...args: any[]) => unknown };
}

export interface SubgraphServerOptions {
  name: string;
  typeDefs: DocumentNode;
  resolvers: Resolvers;
  orm: MikroORM;
  relay: OutboxRelay;
  internalSecret: string;
  maxBodyBytes: number;
  logger: Logger;
  /** Extra unauthenticated routes, e.g. identity's /.well-known/jwks.json. */
  routes?: Record<string, Handler>;
  metrics: Metrics;
  /** What `/ready` checks besides the database (NATS, migrations). */
  readiness: Record<string, ReadinessCheck>;
  /** True once the subgraph is stopping: `/ready` answers 503. */
  stopping: () => boolean;
}

/**
 * Maps errors once, at the edge (STYLE 3): domain errors keep their stable code, GraphQL's own
 * errors (validation, parsing) pass as they are, and anything unexpected is logged in full and
 * answered as a bare INTERNAL_SERVER_ERROR so no internals leak to clients.
 */
export function formatError(logger: Logger) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const original = unwrapResolverError(error);
    if (original instanceof DomainError) {
      const mapped = toGraphQLError(original);
      return { ...formatted, message: mapped.message, extensions: { ...mapped.extensions } };
    }
    if (original instanceof GraphQLError || formatted.extensions?.code !== 'INTERNAL_SERVER_ERROR') return formatted;
    logger.error({ err: original, path: formatted.path }, 'unexpected resolver error');
    return { message: 'Internal server error', path: formatted.path, extensions: { code: 'INTERNAL_SERVER_ERROR' } };
  };
}

/** Builds (without listening) the HTTP server of one subgraph: /graphql, /health, /ready, /metrics and extra routes. */
export async function createSubgraphServer(options: SubgraphServerOptions): Promise<{ http: Server; apollo: ApolloServer<SubgraphContext> }> {
  const logger = options.logger;
  const routes: Record<string, Handler> = { ...options.routes };
  const http = createHttpServer(routes, logger);
  const apollo = new ApolloServer<SubgraphContext>({
    schema: buildSubgraphSchema({ typeDefs: options.typeDefs, resolvers: options.resolvers as never }),
    formatError: formatError(logger),
    includeStacktraceInErrorResponses: false,
    // The process owns signals: it stops the relay and the database after the server drains.
    stopOnTerminationSignals: false,
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer: http }),
      ApolloServerPluginLandingPageDisabled(),
      // Inline traces are for Apollo Studio, which this platform does not report to.
      ApolloServerPluginInlineTraceDisabled(),
      // The schema's @cacheControl hints make each answer's Cache-Control, which the gateway
      // folds into its response's (RemoteGraphQLDataSource's honorSubgraphCacheControlHeader).
      // Installed by default too; named here for the defaults it must keep: what is not marked
      // gets maxAge 0 (never cached), and the header is written, as no-store when uncacheable.
      ApolloServerPluginCacheControl({ defaultMaxAge: 0, calculateHttpHeaders: true }),
      options.metrics.apolloPlugin(options.name),
    ],
  });
  await apollo.start();

  // Verified once the body is parsed (the signature covers the operation); the context reuses it.
  const verified = new WeakMap<IncomingMessage, ReturnType<typeof verifyCaller>>();
  routes['/graphql'] = graphqlHandler(apollo, {
    maxBodyBytes: options.maxBodyBytes,
    logger,
    service: options.name,
    // Only the gateway can sign, so nobody reaches a subgraph around it.
    admit: (req, body) => {
      try {
        verified.set(req, verifyCaller(options.internalSecret, { audience: options.name, headers: req.headers, operation: body as SignedOperation }));
      } catch (error) {
        if (!(error instanceof InternalAuthError)) throw error;
        logger.warn({ reason: error.message, remote: req.socket.remoteAddress }, 'refused unsigned request');
        throw new HttpRefusal(401, 'UNAUTHENTICATED', `Requests must come through the gateway (${error.message})`);
      }
    },
    context: async (req) => {
      const { caller, correlationId } = verified.get(req)!;
      return createSubgraphContext({
        serviceName: options.name,
        em: options.orm.em.fork(),
        log: logger.child({ correlationId, userId: caller.userId }),
        caller,
        correlationId,
        onEventsCommitted: () => options.relay.notify(),
      });
    },
  });
  const component = { subgraph: options.name };
  routes['/health'] = healthRoute(component);
  routes['/ready'] = readyRoute(
    component,
    { database: () => options.orm.em.fork().getConnection().execute('select 1'), ...options.readiness },
    { stopping: options.stopping, logger },
  );
  routes['/metrics'] = options.metrics.route();
  return { http, apollo };
}
