/**
 * npm run start:subgraph -- <name>: one subgraph as its own process (the distributed mode).
 * It connects to PostgreSQL as its own role (DATABASE_URL), applies its pending migrations
 * (replicas take turns), and talks to the others only through NATS JetStream (NATS_URL).
 * SIGTERM or SIGINT drains it: /ready answers 503, requests in flight finish, the consumers
 * finish their batch (acknowledged) or hand it back, the relay and workers stop, then the
 * database closes.
 */
import { loadConfigOrExit } from '../platform/config.js';
import { eventTransportFor } from '../platform/events/connect.js';
import { Shutdown } from '../platform/lifecycle.js';
import { createLogger } from '../platform/log.js';
import { jobQueueFor, liveBusFor } from '../platform/messaging.js';
import { startSubgraph } from '../platform/subgraph/runtime.js';
import { Metrics } from '../platform/telemetry/metrics.js';
import { isSubgraphName, subgraphLoaders, subgraphNames } from '../subgraphs/catalog.js';
import { onStopSignals, startTracing, subgraphsOrExit } from './process.js';

const name = process.argv[2];
if (!isSubgraphName(name)) {
  console.error(`Usage: npm run start:subgraph -- <name>, where <name> is one of: ${subgraphNames.join(', ')}${name ? ` (got ${JSON.stringify(name)})` : ''}`);
  process.exit(2);
}
const module = await subgraphLoaders[name]();

const started = Date.now();
const config = loadConfigOrExit({ require: ['DATABASE_URL', 'NATS_URL', 'PUBLIC_URL'] });
const logger = createLogger(config.LOG_LEVEL).child({ process: `subgraph-${module.name}` });
// Subgraphs ask each other some things directly (a story's text for narration, the status of
// each for audit), through signed internal queries: every subgraph is told where all are.
const others = subgraphsOrExit(config);

const steps = new Shutdown();
const stop = onStopSignals(steps, logger, { delayMs: config.SHUTDOWN_DELAY_MS });
try {
  startTracing(config, `storyloom-${module.name}`, steps);
  const metrics = new Metrics().collectProcessMetrics();
  const transport = await eventTransportFor(config, logger);
  steps.add('event transport', () => transport.close());
  const live = await liveBusFor(config, logger);
  steps.add('live bus', () => live.close());
  const jobs = metrics.instrumentJobs(await jobQueueFor(config, logger));
  steps.add('job queue', () => jobs.close());
  const subgraph = await startSubgraph(module, {
    config,
    databaseUrl: config.DATABASE_URL!,
    transport,
    live,
    jobs,
    logger,
    host: config.HOST,
    port: config.PORT,
    migrate: true,
    metrics,
    stopping: () => stop.requested,
    topology: {
      mode: 'DISTRIBUTED',
      subgraphs: () => Object.entries(others.urls).map(([other, url]) => ({ name: other, url })),
      publicUrl: () => config.PUBLIC_URL!.replace(/\/+$/, ''),
    },
  });
  steps.add('subgraph', () => subgraph.close());
  if (!stop.requested) logger.info({ subgraph: module.name, url: subgraph.url, startupMs: Date.now() - started }, 'subgraph ready');
} catch (error) {
  logger.fatal({ err: error }, 'start-up failed');
  await stop.now('start-up failure', 1);
}
