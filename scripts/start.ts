/**
 * npm start: the whole supergraph in one process. PostgreSQL is DATABASE_URL or an embedded
 * server under DATA_DIR; events go over NATS when NATS_URL is set, else in process.
 */
import { ConfigError, loadConfig } from '../platform/config.js';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../platform/db/embedded.js';
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
let embedded: EmbeddedDatabase | null = null;
let transport: EventTransport | null = null;
let app: AllInOne | null = null;

async function shutdown(signal: string): Promise<void> {
  logger.info({ signal }, 'shutting down');
  await app?.close();
  await transport?.close();
  await embedded?.stop();
  logger.info('stopped');
}

try {
  let databaseUrl = config.DATABASE_URL;
  if (!databaseUrl) {
    logger.info({ dataDir: config.DATA_DIR, port: config.EMBEDDED_PG_PORT }, 'starting embedded PostgreSQL');
    embedded = await startEmbeddedPostgres({ dataDir: config.DATA_DIR, port: config.EMBEDDED_PG_PORT, logger });
    databaseUrl = embedded.url;
  }
  transport = config.NATS_URL ? await JetStreamTransport.connect({ url: config.NATS_URL, logger }) : new InProcessTransport();
  logger.info({ transport: transport.kind }, 'event transport ready');
  app = await startAllInOne({ config, databaseUrl, transport, logger });
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
