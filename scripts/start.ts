/**
 * npm start: the whole supergraph in one process. PostgreSQL is DATABASE_URL or an embedded
 * server under DATA_DIR; events go over NATS when NATS_URL is set, else in process.
 */
import { startAllInOne, type AllInOne } from '../gateway/all-in-one.js';
import { loadConfigOrExit } from '../platform/config.js';
import { databaseFor } from '../platform/db/connect.js';
import { stopEmbeddedPostgres } from '../platform/db/embedded.js';
import { eventTransportFor } from '../platform/events/connect.js';
import type { EventTransport } from '../platform/events/transport.js';
import { Shutdown } from '../platform/lifecycle.js';
import { createLogger } from '../platform/log.js';
import { Metrics } from '../platform/telemetry/metrics.js';
import { onStopSignals, startTracing } from './process.js';

const started = Date.now();
const config = loadConfigOrExit({ generateSecrets: true });
const logger = createLogger(config.LOG_LEVEL);
let database: Awaited<ReturnType<typeof databaseFor>> | null = null;
let transport: EventTransport | null = null;
let app: AllInOne | null = null;

const steps = new Shutdown();
startTracing(config, 'storyloom', steps);
// A shutdown during start-up finds `database` unset: the embedded server is stopped directly.
steps.add('database', () => (database ? database.stop() : stopEmbeddedPostgres()));
steps.add('event transport', () => transport?.close());
steps.add('supergraph', () => app?.close());
// Installed before anything starts, so Ctrl-C during initdb or migrations still stops the embedded PostgreSQL.
const stop = onStopSignals(steps, logger);

try {
  database = await databaseFor(config, logger);
  transport = await eventTransportFor(config, logger);
  logger.info({ transport: transport.kind }, 'event transport ready');
  if (!stop.requested) app = await startAllInOne({ config, databaseUrl: database.url, transport, logger, metrics: new Metrics().collectProcessMetrics() });
} catch (error) {
  logger.fatal({ err: error }, 'start-up failed');
  await stop.now('start-up failure', 1);
}
if (app && !stop.requested) {
  const ms = Date.now() - started;
  logger.info({ gateway: app.gatewayUrl, subgraphs: Object.fromEntries(app.subgraphs.map((s) => [s.name, s.url])), startupMs: ms }, 'storyloom ready');
  // One human line for the terminal, besides the structured log.
  process.stderr.write(
    `\nStoryloom is up in ${ms} ms: GraphQL at ${app.gatewayUrl}\n` +
      `${app.subgraphs.map((s) => `  ${s.name.padEnd(14)} ${s.url}/graphql`).join('\n')}\nCtrl-C stops it.\n\n`,
  );
}
