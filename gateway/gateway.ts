import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { ApolloGateway } from '@apollo/gateway';
import { createHttpServer, type Handler } from '../platform/http/server.js';
import { graphqlHandler } from '../platform/http/graphql-http.js';
import { healthRoute, readyRoute } from '../platform/http/probes.js';
import { Metrics } from '../platform/telemetry/metrics.js';
import { traceHeaders } from '../platform/telemetry/tracing.js';
import { signCaller, type Caller } from '../platform/internal-auth.js';
import type { Logger } from '../platform/log.js';
import { accessLog } from './access-log.js';
import { withCors } from './cors.js';
import { maskInternalErrors } from './errors.js';
import { mediaProxy, webhookProxy } from './media-proxy.js';
import { createTokenVerifier } from './auth.js';
import { liveFieldsOf, startSubscriptionServer } from './subscriptions.js';
import { apiSchemaOf, SUPERGRAPH_PATH } from './supergraph.js';
import { readFileSync } from 'node:fs';
import type { Config } from '../platform/config.js';
import { JWKS_PATH } from '../platform/jwt.js';
import type { CircuitState } from './circuit-breaker.js';
import { SubgraphDataSource } from './subgraph-source.js';
import type { LiveBus } from '../platform/live/live.js';

export interface GatewayOptions {
  supergraphSdl: string;
  /** Where each subgraph is reachable, by subgraph name; overrides the URLs in the supergraph. */
  subgraphUrls: Record<string, string>;
  jwksUrl: string;
  issuer: string;
  audience: string;
  internalSecret: string;
  maxBodyBytes: number;
  /** Browser origins allowed to call; `*` (the default) for any. */
  corsOrigins?: readonly string[];
  /** Where live updates (job progress) arrive, for subscriptions. */
  live: LiveBus;
  subscriptionLimits?: { perConnection: number; perUser: number };
  logger: Logger;
  /** The process's metrics (shared with the subgraphs in the all-in-one mode); else its own. */
  metrics?: Metrics;
  /**
   * `/ready` and `/metrics` are for operators: with `separate`, they are left off the public
   * server and returned as `adminRoutes`, for a port of their own.
   */
  adminRoutes?: 'public' | 'separate';
  /** True once the process is stopping, before the gateway is: `/ready` answers 503 from then on. */
  stopping?: () => boolean;
  /** Calls to each subgraph: a timeout (per subgraph, else the default) and a circuit breaker. */
  subgraphCalls: { timeoutMs: number; timeoutsMs?: Record<string, number>; failureThreshold: number; resetMs: number };
}

export interface GatewayContext {
  caller: Caller;
  correlationId: string;
}

/**
 * The gateway's options that come from settings, the same in both modes: the caller adds where
 * the subgraphs are, the live bus, the logger and the metrics.
 */
export function gatewaySettings(config: Config, subgraphUrls: Record<string, string>, timeoutsMs?: Record<string, number>) {
  return {
    supergraphSdl: readFileSync(SUPERGRAPH_PATH, 'utf8'),
    subgraphUrls,
    jwksUrl: `${subgraphUrls.identity}${JWKS_PATH}`,
    issuer: config.JWT_ISSUER,
    audience: config.JWT_AUDIENCE,
    internalSecret: config.INTERNAL_SECRET,
    maxBodyBytes: config.MAX_BODY_BYTES,
    corsOrigins: config.CORS_ORIGINS,
    subscriptionLimits: { perConnection: config.SUBSCRIPTIONS_PER_CONNECTION, perUser: config.SUBSCRIPTIONS_PER_USER },
    subgraphCalls: { timeoutMs: config.SUBGRAPH_TIMEOUT_MS, timeoutsMs, failureThreshold: config.SUBGRAPH_CIRCUIT_FAILURES, resetMs: config.SUBGRAPH_CIRCUIT_RESET_MS },
  } satisfies Partial<GatewayOptions>;
}

const CIRCUIT_STATES: Record<CircuitState, number> = { CLOSED: 0, HALF_OPEN: 1, OPEN: 2 };

// A client may name its own correlation id; anything odd is replaced rather than logged verbatim.
const CORRELATION_ID = /^[A-Za-z0-9._-]{8,100}$/;

/**
 * The one public endpoint. It verifies the caller's access token, then forwards the caller to
 * every subgraph in headers signed with the internal secret (subgraphs trust nothing else).
 */
export interface Gateway {
  http: Server;
  apollo: ApolloServer<GatewayContext>;
  subscriptions: ReturnType<typeof startSubscriptionServer>;
  /** `/health`, `/ready`, `/metrics`: on the public server too unless `adminRoutes: 'separate'`. */
  adminRoutes: Record<string, Handler>;
  /** Stops subscriptions, then Apollo (which drains HTTP). */
  stop(): Promise<void>;
}

export async function createGateway(options: GatewayOptions): Promise<Gateway> {
  const logger = options.logger.child({ component: 'gateway' });
  const callerOf = createTokenVerifier(options);
  const metrics = options.metrics ?? new Metrics();
  const calls = options.subgraphCalls;
  let stopping = false;
  // @apollo/gateway 2.14 otherwise reports usage metrics to Apollo and, to label them, probes
  // the cloud metadata addresses (AWS, GCP, Azure, Alibaba) at start. A self-hosted platform
  // sends nothing anywhere unasked; an operator who wants it sets APOLLO_TELEMETRY_DISABLED=false.
  process.env.APOLLO_TELEMETRY_DISABLED ??= 'true';
  const gateway = new ApolloGateway({
    supergraphSdl: options.supergraphSdl,
    buildService: ({ name, url }) => {
      metrics.circuitState.set({ subgraph: name }, CIRCUIT_STATES.CLOSED);
      return new SubgraphDataSource({
        name,
        url: options.subgraphUrls[name] ? `${options.subgraphUrls[name]}/graphql` : url!,
        timeoutMs: calls.timeoutsMs?.[name] ?? calls.timeoutMs,
        failureThreshold: calls.failureThreshold,
        resetMs: calls.resetMs,
        logger,
        onStateChange: (subgraph, state) => metrics.circuitState.set({ subgraph }, CIRCUIT_STATES[state]),
        onFetch: ({ subgraph, durationMs, outcome }) => {
          metrics.subgraphFetches.inc({ subgraph, outcome });
          if (outcome !== 'rejected') metrics.subgraphFetchDuration.observe({ subgraph }, durationMs / 1000);
        },
        willSendRequest({ request, context }) {
          const signed = signCaller(options.internalSecret, {
            audience: name,
            caller: context.caller,
            correlationId: context.correlationId,
            operation: { query: request.query, variables: request.variables },
          });
          for (const [key, value] of Object.entries(signed)) request.http?.headers.set(key, value);
          // The subgraph's span joins the trace of this fetch (@apollo/gateway's span is active here).
          for (const [key, value] of Object.entries(traceHeaders())) request.http?.headers.set(key, value);
        },
      });
    },
  });
  // Routes are filled in once Apollo has started; the server needs to exist first for draining.
  const routes: Record<string, Handler> = {};
  const http = createHttpServer(routes, logger);
  const apollo = new ApolloServer<GatewayContext>({
    gateway,
    introspection: true,
    csrfPrevention: true,
    includeStacktraceInErrorResponses: false,
    stopOnTerminationSignals: false,
    formatError: maskInternalErrors(logger),
    plugins: [ApolloServerPluginDrainHttpServer({ httpServer: http }), accessLog(logger), metrics.apolloPlugin('gateway')],
  });
  await apollo.start();

  Object.assign(routes, {
    '/graphql': withCors(graphqlHandler(apollo, {
      maxBodyBytes: options.maxBodyBytes,
      logger,
      service: 'gateway',
      callerTrace: 'link',
      context: async (req, res) => {
        const given = req.headers['x-correlation-id'];
        const correlationId = typeof given === 'string' && CORRELATION_ID.test(given) ? given : randomUUID();
        res.setHeader('x-correlation-id', correlationId);
        return { caller: await callerOf(req.headers.authorization), correlationId };
      },
    }), options.corsOrigins ?? ['*']),
    '/health': healthRoute({ component: 'gateway' }),
    // With CORS: a browser uploads a sample from the app's origin (a preflighted PUT).
    '/media/': withCors(mediaProxy(options.subgraphUrls, logger), options.corsOrigins ?? ['*']),
    // No CORS: providers (Twilio, SendGrid, MessageBird) call from their servers, never a browser.
    '/webhooks/': webhookProxy(options.subgraphUrls, logger, options.maxBodyBytes),
  } satisfies Record<string, Handler>);

  const adminRoutes: Record<string, Handler> = {
    '/health': healthRoute({ component: 'gateway' }),
    // Ready while NATS (live updates) answers; a subgraph that is down is answered around (partial data).
    '/ready': readyRoute({ component: 'gateway' }, { live: () => options.live.flush() }, { stopping: () => stopping || (options.stopping?.() ?? false), logger }),
    '/metrics': metrics.route(),
  };
  if (options.adminRoutes !== 'separate') Object.assign(routes, adminRoutes);

  const subscriptions = startSubscriptionServer({
    http,
    schema: apiSchemaOf(options.supergraphSdl),
    liveFields: liveFieldsOf(options.supergraphSdl),
    live: options.live,
    authenticate: callerOf,
    maxPayloadBytes: options.maxBodyBytes,
    limits: options.subscriptionLimits ?? { perConnection: 50, perUser: 200 },
    logger,
    // Each live update runs as a query through the gateway itself, as the subscriber.
    fetch: async (request) => {
      const response = await apollo.executeOperation(
        { query: request.document, variables: request.variables },
        { contextValue: { caller: request.caller, correlationId: request.correlationId } },
      );
      if (response.body.kind !== 'single') throw new Error('a live query answered incrementally');
      return { data: response.body.singleResult.data ?? null, errors: response.body.singleResult.errors };
    },
  });
  const unobserve = metrics.activeSubscriptions.add(() => [[{}, subscriptions.openSubscriptions()]]);
  return {
    http,
    apollo,
    subscriptions,
    adminRoutes,
    async stop() {
      stopping = true;
      unobserve();
      await subscriptions.close();
      await apollo.stop();
    },
  };
}
