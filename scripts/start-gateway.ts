/**
 * npm run start:gateway: the gateway as its own process (the distributed mode). It finds each
 * subgraph at SUBGRAPH_<NAME>_URL, waits (up to SUBGRAPH_STARTUP_WAIT_MS) for them to be
 * ready, and serves anyway with whichever are up: a subgraph that is down or slow costs its
 * part of an answer (partial data, an error naming it), not the whole endpoint. Live updates
 * for subscriptions come over NATS (NATS_URL).
 */
import { readFile } from 'node:fs/promises';
import { createGateway } from '../gateway/gateway.js';
import { checkSubgraphs, discoverSubgraphs } from '../gateway/subgraph-health.js';
import { SUPERGRAPH_PATH } from '../gateway/supergraph.js';
import { loadConfigOrExit } from '../platform/config.js';
import { listen } from '../platform/http/server.js';
import { Shutdown } from '../platform/lifecycle.js';
import { createLogger } from '../platform/log.js';
import { liveBusFor } from '../platform/messaging.js';
import { Metrics } from '../platform/telemetry/metrics.js';
import { setupTracing } from '../platform/telemetry/tracing.js';
import { JWKS_PATH } from '../platform/jwt.js';
import { subgraphNames } from '../subgraphs/catalog.js';
import { onStopSignals } from './signals.js';

const started = Date.now();
const config = loadConfigOrExit({ require: ['NATS_URL'] });
const logger = createLogger(config.LOG_LEVEL).child({ process: 'gateway' });
let discovered: ReturnType<typeof discoverSubgraphs>;
try {
  discovered = discoverSubgraphs(process.env, subgraphNames, { defaultTimeoutMs: config.SUBGRAPH_TIMEOUT_MS });
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
}

const steps = new Shutdown();
const stop = onStopSignals(steps, logger);
try {
  const tracing = setupTracing({ serviceName: config.OTEL_SERVICE_NAME ?? 'storyloom-gateway', otlpEndpoint: config.OTEL_EXPORTER_OTLP_ENDPOINT });
  steps.add('tracing', () => tracing.shutdown());
  const live = await liveBusFor(config, logger);
  steps.add('live bus', () => live.close());
  const health = await checkSubgraphs(discovered.urls, { timeoutMs: 2_000, deadlineMs: config.SUBGRAPH_STARTUP_WAIT_MS, path: '/ready', logger });
  const down = Object.entries(health).filter(([, status]) => !status.up);
  if (down.length) logger.warn({ down: Object.fromEntries(down.map(([name, status]) => [name, status.problem])) }, 'serving without the subgraphs that are not ready; their fields answer with errors until they are');
  const gateway = await createGateway({
    supergraphSdl: await readFile(SUPERGRAPH_PATH, 'utf8'),
    subgraphUrls: discovered.urls,
    jwksUrl: `${discovered.urls.identity}${JWKS_PATH}`,
    issuer: config.JWT_ISSUER,
    audience: config.JWT_AUDIENCE,
    internalSecret: config.INTERNAL_SECRET,
    maxBodyBytes: config.MAX_BODY_BYTES,
    corsOrigins: config.CORS_ORIGINS,
    live,
    subscriptionLimits: { perConnection: config.SUBSCRIPTIONS_PER_CONNECTION, perUser: config.SUBSCRIPTIONS_PER_USER },
    logger,
    metrics: new Metrics().collectProcessMetrics(),
    subgraphCalls: {
      timeoutMs: config.SUBGRAPH_TIMEOUT_MS,
      timeoutsMs: discovered.timeoutsMs,
      failureThreshold: config.SUBGRAPH_CIRCUIT_FAILURES,
      resetMs: config.SUBGRAPH_CIRCUIT_RESET_MS,
    },
  });
  steps.add('gateway', () => gateway.stop());
  const url = await listen(gateway.http, config.PORT, config.HOST);
  if (!stop.requested) logger.info({ gateway: `${url}/graphql`, subgraphs: discovered.urls, startupMs: Date.now() - started }, 'gateway ready');
} catch (error) {
  logger.fatal({ err: error }, 'start-up failed');
  await stop.now('start-up failure', 1);
}
