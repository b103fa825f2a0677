/**
 * npm start: the whole supergraph in one process. PostgreSQL is DATABASE_URL or an embedded
 * server under DATA_DIR; events go over NATS when NATS_URL is set, else in process.
 */
import { ConfigError, loadConfig } from '../platform/config.js';
import { databaseFor } from '../platform/db/connect.js';
import { InProcessTransport } from '../platform/events/in-process.js';
import { JetStreamTransport } from '../platform/events/jetstream.js';
import type { EventTransport } from '../platform/events/transport.js';
import { createLogger } from '../platform/log.js';
import { startAllInOne, type AllInOne } from './all-in-one.js';

const started = Date.now();
let config;
try {
  config = loadConfig(process.env, { generateSecrets: true });
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(error.message);
  process.exit(1);
}
const logger = createLogger(config.LOG_LEVEL);
let database: Awaited<ReturnType<typeof databaseFor>> | null = null;
let transport: EventTransport | null = null;
let app: AllInOne | null = null;

async function shutdown(signal: string): Promise<void> {
  logger.info({ signal }, 'shutting down');
  await app?.close();
  await transport?.close();
  await database?.stop();
  logger.info('stopped');
}

try {
  database = await databaseFor(config, logger);
  transport = config.NATS_URL ? await JetStreamTransport.connect({ url: config.NATS_URL, logger }) : new InProcessTransport();
  logger.info({ transport: transport.kind }, 'event transport ready');
  app = await startAllInOne({ config, databaseUrl: database.url, transport, logger });
  const ms = Date.now() - started;
  logger.info({ gateway: app.gatewayUrl, subgraphs: Object.fromEntries(app.subgraphs.map((s) => [s.name, s.url])), startupMs: ms }, 'storyloom ready');
  // One human line for the terminal, besides the structured log.
  process.stderr.write(`\nStoryloom is up in ${ms} ms: GraphQL at ${app.gatewayUrl}\n${app.subgraphs.map((s) => `  ${s.name.padEnd(14)} ${s.url}/graphql`).join('\n')}\nCtrl-C stops it.\n\n`);
} catch (error) {
  logger.fatal({ err: error }, 'start-up failed');
  await shutdown('startup-failure').catch(() => undefined);
  process.exit(1);
}

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    shutdown(signal).then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'unclean shutdown');
        process.exit(1);
      },
    );
  });
}
