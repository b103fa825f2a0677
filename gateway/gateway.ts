import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { ApolloGateway } from '@apollo/gateway';
import { GraphQLError, OperationTypeNode } from 'graphql';
import { createHttpServer, type Handler } from '../platform/http/server.js';
import { graphqlHandler, HttpRefusal } from '../platform/http/graphql-http.js';
import { healthRoute, readyRoute } from '../platform/http/probes.js';
import { Metrics } from '../platform/telemetry/metrics.js';
import { traceHeaders } from '../platform/telemetry/tracing.js';
import { ANONYMOUS, signCaller, type Caller } from '../platform/internal-auth.js';
import type { Logger } from '../platform/log.js';
import { accessLog } from './access-log.js';
import { withCors } from './cors.js';
import { explorerRoutes, withExplorerPage } from './explorer/explorer.js';
import { maskInternalErrors } from './errors.js';
import { mediaProxy, webhookProxy } from './media-proxy.js';
import { createTokenVerifier } from './auth.js';
import { liveFieldsOf, startSubscriptionServer } from './subscriptions.js';
import { apiSchemaOf, SUPERGRAPH_PATH } from './supergraph.js';
import { readFileSync } from 'node:fs';
import type { Config } from '../platform/config.js';
import { JWKS_PATH } from '../platform/jwt.js';
import type { CircuitState } from './circuit-breaker.js';
import { SubgraphDataSource, WriteEpochs } from './subgraph-source.js';
import { apolloLimits, checkVariablesSize, withOperationTimeouts, type OperationLimits, type OperationTimeouts } from './operation-limits.js';
import { clientIp, MemoryBucketStore, proxyBlockList, RateLimiter, retryAfterSeconds, type BucketPolicy, type BucketStore } from './rate-limit.js';
import { PersistedOperations, type PersistedSettings } from './persisted-operations.js';
import type { IncomingMessage } from 'node:http';
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
  subgraphCalls: { timeoutMs: number; timeoutsMs?: Record<string, number>; failureThreshold: number; resetMs: number; dedupe: boolean };
  /** Each operation's depth, aliases, root fields, tokens and estimated cost; over one, it is refused unrun. */
  limits: OperationLimits;
  maxVariablesBytes: number;
  /** How long an operation may run, by default and by operation name. */
  operationTimeouts: OperationTimeouts;
  /** Token buckets per user and per client address; null: no rate limits. */
  rateLimits: { user: BucketPolicy; ip: BucketPolicy } | null;
  /** Where the buckets live: NATS KV shared by replicas (distributed), else this process's memory. */
  rateLimitStore?: BucketStore;
  /** Proxies in front of the gateway whose X-Forwarded-For names the client (0: none), and where they call from (CIDRs). */
  trustedProxies: number;
  trustedProxyCidrs: readonly string[];
  persisted: PersistedSettings;
  /** The schema explorer bundled ahead of time (npm run explorer:build); without it, it is bundled when first opened. */
  explorerAssetsDir?: string;
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
    subgraphCalls: {
      timeoutMs: config.SUBGRAPH_TIMEOUT_MS,
      timeoutsMs,
      failureThreshold: config.SUBGRAPH_CIRCUIT_FAILURES,
      resetMs: config.SUBGRAPH_CIRCUIT_RESET_MS,
      dedupe: config.SUBGRAPH_DEDUPE === 'on',
    },
    limits: {
      maxDepth: config.LIMIT_MAX_DEPTH,
      maxAliases: config.LIMIT_MAX_ALIASES,
      maxRootFields: config.LIMIT_MAX_ROOT_FIELDS,
      maxTokens: config.LIMIT_MAX_TOKENS,
      maxCost: config.LIMIT_MAX_COST,
    },
    maxVariablesBytes: config.MAX_VARIABLES_BYTES,
    operationTimeouts: { defaultMs: config.OPERATION_TIMEOUT_MS, byOperation: config.OPERATION_TIMEOUTS_MS ?? {} },
    rateLimits:
      config.RATE_LIMITS === 'on'
        ? {
            user: { capacity: config.RATE_LIMIT_USER_BURST, refillPerSecond: config.RATE_LIMIT_USER_PER_SECOND },
            ip: { capacity: config.RATE_LIMIT_IP_BURST, refillPerSecond: config.RATE_LIMIT_IP_PER_SECOND },
          }
        : null,
    trustedProxies: config.TRUSTED_PROXIES,
    trustedProxyCidrs: config.TRUSTED_PROXY_CIDRS,
    persisted: { mode: config.PERSISTED_OPERATIONS, introspection: config.PERSISTED_INTROSPECTION },
    explorerAssetsDir: config.EXPLORER_ASSETS_DIR,
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
  // One for all the subgraphs: a caller's mutation on one keeps their later queries to any from
  // sharing a call begun before it.
  const writes = new WriteEpochs();
  let stopping = false;
  // @apollo/gateway 2.14 otherwise reports usage metrics to Apollo and, to label them, probes
  // the cloud metadata addresses (AWS, GCP, Azure, Alibaba) at start. A self-hosted platform
  // sends nothing anywhere unasked; an operator who wants it sets APOLLO_TELEMETRY_DISABLED=false.
  process.env.APOLLO_TELEMETRY_DISABLED ??= 'true';
  const gateway = new ApolloGateway({
    supergraphSdl: options.supergraphSdl,
    buildService: ({ name, url }) => {
      metrics.circuitState.set({ subgraph: name }, CIRCUIT_STATES.CLOSED);
      const source = new SubgraphDataSource({
        name,
        url: options.subgraphUrls[name] ? `${options.subgraphUrls[name]}/graphql` : url!,
        timeoutMs: calls.timeoutsMs?.[name] ?? calls.timeoutMs,
        failureThreshold: calls.failureThreshold,
        resetMs: calls.resetMs,
        dedupe: calls.dedupe,
        writes,
        logger,
        onStateChange: (subgraph, state) => metrics.circuitState.set({ subgraph }, CIRCUIT_STATES[state]),
        onFetch: ({ subgraph, durationMs, outcome }) => {
          metrics.subgraphFetches.inc({ subgraph, outcome });
          if (outcome !== 'rejected') metrics.subgraphFetchDuration.observe({ subgraph }, durationMs / 1000);
        },
        onShared: (subgraph) => metrics.subgraphFetchesShared.inc({ subgraph }),
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
      // Its kept-alive connections close with the server, which Apollo's stop drains and closes
      // once every request in flight has been answered (nothing calls a subgraph after that).
      http.once('close', () => source.close());
      return source;
    },
  });
  // Routes are filled in once Apollo has started; the server needs to exist first for draining.
  const routes: Record<string, Handler> = {};
  const http = createHttpServer(routes, logger);
  const limits = apolloLimits<GatewayContext>(options.limits);
  const persisted = PersistedOperations.fromFile(options.persisted);
  const apollo = new ApolloServer<GatewayContext>({
    gateway: withOperationTimeouts(gateway, options.operationTimeouts),
    introspection: true,
    csrfPrevention: true,
    includeStacktraceInErrorResponses: false,
    stopOnTerminationSignals: false,
    formatError: maskInternalErrors(logger),
    parseOptions: limits.parseOptions,
    validationRules: limits.validationRules,
    ...persisted.apolloOptions(),
    plugins: [
      // First: it gives each limit's refusal its own code before the others see the errors.
      ...limits.plugins,
      ApolloServerPluginDrainHttpServer({ httpServer: http }),
      accessLog(logger),
      metrics.apolloPlugin('gateway'),
      // Browsers opening /graphql get the schema explorer (./explorer/), not Apollo's landing page.
      ApolloServerPluginLandingPageDisabled(),
      // HTTP caching: each subgraph's Cache-Control (from its @cacheControl hints) restricts the
      // response's policy (SubgraphDataSource), which Apollo's cache-control plugin writes.
      // Only an anonymous GET may be kept: a POST's answer (every mutation's; over GET one is a
      // 405) and any answer to a request with credentials (drafts, the caller's own data) are
      // no-store, whatever the hints say.
      {
        async requestDidStart({ request, overallCachePolicy }) {
          if (request.http?.method !== 'GET' || request.http.headers.has('authorization')) overallCachePolicy.restrict({ maxAge: 0, scope: 'PRIVATE' });
        },
      },
      // @apollo/gateway would answer a subscription sent over HTTP with a 500: it is the
      // client's mistake, and graphql-ws on the same path is where it belongs.
      {
        async requestDidStart() {
          return {
            async didResolveOperation({ operation }) {
              if (operation?.operation !== OperationTypeNode.SUBSCRIPTION) return;
              throw new GraphQLError('Subscriptions go over graphql-ws (the graphql-transport-ws protocol) on this same path, not over HTTP', {
                extensions: { code: 'BAD_REQUEST', http: { status: 400 } },
              });
            },
          };
        },
      },
    ],
  });
  await apollo.start();

  const explorer = explorerRoutes({ logger, assetsDir: options.explorerAssetsDir });
  const rateLimitStore = options.rateLimits ? (options.rateLimitStore ?? new MemoryBucketStore()) : null;
  const limiter =
    options.rateLimits && rateLimitStore
      ? new RateLimiter({ store: rateLimitStore, policies: options.rateLimits, logger, onStoreError: () => metrics.rateLimitStoreErrors.inc() })
      : null;
  const proxyAddresses = proxyBlockList(options.trustedProxyCidrs);
  /** Spends one token of the caller's bucket: null if allowed, else why and for how long not. */
  const charge = async (caller: Caller, ip: string): Promise<{ message: string; retryAfterSeconds: number } | null> => {
    if (!limiter) return null;
    // A guest session (no account) spends from its own bucket, like a user.
    const userId = caller.userId ?? (caller.guest ? `guest:${caller.guest.participantId}` : null);
    const decision = await limiter.check({ userId, ip });
    if (decision.allowed) return null;
    metrics.rateLimited.inc({ bucket: userId ? 'user' : 'ip' });
    const seconds = retryAfterSeconds(decision);
    return { message: `Too many requests: try again in ${seconds} s`, retryAfterSeconds: seconds };
  };
  // The caller is known before the body is read (the rate limit needs it); the context reuses it.
  const callers = new WeakMap<IncomingMessage, Promise<Caller>>();
  const callerFor = (req: IncomingMessage) => {
    let caller = callers.get(req);
    if (!caller) callers.set(req, (caller = callerOf(req.headers.authorization)));
    return caller;
  };
  Object.assign(routes, {
    '/graphql': withCors(withExplorerPage(explorer.page, graphqlHandler(apollo, {
      maxBodyBytes: options.maxBodyBytes,
      logger,
      service: 'gateway',
      callerTrace: 'link',
      // Before the body is read: a flood is refused at the cost of a token check.
      before: async (req) => {
        if (!limiter) return;
        // A token that cannot be checked (identity's keys unreachable) charges the address; the
        // context then answers the verifier's own error (503).
        const caller = await callerFor(req).catch(() => ANONYMOUS);
        const refusal = await charge(caller, clientIp(req, options.trustedProxies, proxyAddresses));
        if (refusal) throw new HttpRefusal(429, 'RATE_LIMITED', refusal.message, { 'retry-after': String(refusal.retryAfterSeconds) });
      },
      // A persisted operation's id becomes its document (or, in persisted-only mode, anything
      // else is refused); then the variables' size is checked, before anything is parsed.
      admit: (req, body) => {
        const admitted = persisted.admit(req, body) ?? body;
        checkVariablesSize(admitted, options.maxVariablesBytes);
        return admitted;
      },
      context: async (req, res) => {
        const given = req.headers['x-correlation-id'];
        const correlationId = typeof given === 'string' && CORRELATION_ID.test(given) ? given : randomUUID();
        res.setHeader('x-correlation-id', correlationId);
        return { caller: await callerFor(req), correlationId };
      },
    })), options.corsOrigins ?? ['*']),
    // The schema explorer's script, styles and workers (its page is /graphql itself).
    ...explorer.assets,
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
    operationLimits: options.limits,
    persisted,
    // Opening a connection and each subscribe spend from the caller's bucket, as a request does.
    charge: (caller, req) => charge(caller, clientIp(req, options.trustedProxies, proxyAddresses)),
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
      await limiter?.close();
      await rateLimitStore?.close?.();
    },
  };
}
