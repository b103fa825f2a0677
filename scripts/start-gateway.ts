/**
 * npm run start:gateway: the gateway as its own process (the distributed mode). It finds each
 * subgraph at SUBGRAPH_<NAME>_URL, waits (up to SUBGRAPH_STARTUP_WAIT_MS) for them to be
 * ready, and serves anyway with whichever are up: a subgraph that is down or slow costs its
 * part of an answer (partial data, an error naming it), not the whole endpoint. Live updates
 * for subscriptions come over NATS (NATS_URL).
 */
import { createGateway, gatewaySettings } from '../gateway/gateway.js';
import { fullRefillMs, NatsKvBucketStore } from '../gateway/rate-limit.js';
import { checkSubgraphs } from '../gateway/subgraph-health.js';
import { loadConfigOrExit } from '../platform/config.js';
import { closeServer, createHttpServer, listen } from '../platform/http/server.js';
import { Shutdown } from '../platform/lifecycle.js';
import { createLogger } from '../platform/log.js';
import { liveBusFor } from '../platform/messaging.js';
import { Metrics } from '../platform/telemetry/metrics.js';
import { onStopSignals, startTracing, subgraphsOrExit } from './process.js';

const started = Date.now();
const config = loadConfigOrExit({ require: ['NATS_URL'] });
const logger = createLogger(config.LOG_LEVEL).child({ process: 'gateway' });
const discovered = subgraphsOrExit(config);

const steps = new Shutdown();
const stop = onStopSignals(steps, logger, { delayMs: config.SHUTDOWN_DELAY_MS });
try {
  startTracing(config, 'storyloom-gateway', steps);
  const live = await liveBusFor(config, logger);
  steps.add('live bus', () => live.close());
  const health = await checkSubgraphs(discovered.urls, { timeoutMs: 2_000, deadlineMs: config.SUBGRAPH_STARTUP_WAIT_MS, path: '/ready', logger });
  const down = Object.entries(health).filter(([, status]) => !status.up);
  if (down.length) logger.warn({ down: Object.fromEntries(down.map(([name, status]) => [name, status.problem])) }, 'serving without the subgraphs that are not ready; their fields answer with errors until they are');
  const settings = gatewaySettings(config, discovered.urls, discovered.timeoutsMs);
  // The replicas share their rate limits' token buckets in NATS KV (the gateway closes it).
  const rateLimitStore = settings.rateLimits
    ? await NatsKvBucketStore.connect({
        url: config.NATS_URL!,
        bucket: config.RATE_LIMIT_KV_BUCKET,
        // A key outlives the time its bucket takes to refill, so none expires half-spent.
        ttlMs: Math.max(60_000, fullRefillMs(settings.rateLimits.user), fullRefillMs(settings.rateLimits.ip)),
      })
    : undefined;
  const gateway = await createGateway({
    ...settings,
    rateLimitStore,
    live,
    logger,
    metrics: new Metrics().collectProcessMetrics(),
    adminRoutes: config.ADMIN_PORT ? 'separate' : 'public',
    stopping: () => stop.requested,
  });
  steps.add('gateway', () => gateway.stop());
  // Probes and metrics on a port of their own, which the public Service does not expose.
  const admin = config.ADMIN_PORT ? createHttpServer(gateway.adminRoutes, logger) : null;
  if (admin) steps.add('admin server', () => closeServer(admin));
  const adminUrl = admin ? await listen(admin, config.ADMIN_PORT!, config.HOST) : undefined;
  const url = await listen(gateway.http, config.PORT, config.HOST);
  if (!stop.requested) logger.info({ gateway: `${url}/graphql`, admin: adminUrl, subgraphs: discovered.urls, startupMs: Date.now() - started }, 'gateway ready');
} catch (error) {
  logger.fatal({ err: error }, 'start-up failed');
  await stop.now('start-up failure', 1);
}
