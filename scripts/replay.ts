/**
 * npm run replay -- <consumer>: rebuilds a consumer's read model from the event stream, from
 * the beginning (DESIGN: Replay). In one transaction it clears the read model and the
 * consumer's inbox, then handles every event the stream holds; the live consumer, if running,
 * waits meanwhile and goes on afterwards. Only consumers with a `reset` can be replayed.
 *
 * The stream is JetStream's (NATS_URL): the in-process transport of `npm start` without
 * NATS_URL keeps its stream in that process's memory, where no other process can read it.
 */
import { loadConfigOrExit } from '../platform/config.js';
import { databaseFor } from '../platform/db/connect.js';
import { openDatabase } from '../platform/db/database.js';
import { EventConsumer } from '../platform/events/consumer.js';
import { JetStreamTransport } from '../platform/events/jetstream.js';
import { createLogger } from '../platform/log.js';
import { subgraphModules } from '../subgraphs/index.js';
import { InProcessJobQueue } from '../platform/jobs/in-process.js';
import { InProcessLiveBus } from '../platform/live/in-process.js';

const name = process.argv[2];
const config = loadConfigOrExit({ generateSecrets: true });
const logger = createLogger(config.LOG_LEVEL);

// Consumers are named `<subgraph>` or `<subgraph>-<purpose>`.
const module = name ? subgraphModules.find((candidate) => name === candidate.name || name.startsWith(`${candidate.name}-`)) : undefined;
if (!name || !module) {
  process.stderr.write(`Usage: npm run replay -- <consumer>\n${name ? `No subgraph owns a consumer named "${name}".\n` : ''}`);
  process.exit(2);
}
if (!config.NATS_URL) {
  process.stderr.write('Replay reads the JetStream stream: set NATS_URL. (Without it, events live only in the memory of the process that runs npm start.)\n');
  process.exit(2);
}

const database = await databaseFor(config, logger);
let exitCode = 0;
try {
  const orm = await openDatabase({ url: database.url, schema: module.name, entities: module.entities, migrations: module.migrations, logger });
  const transport = await JetStreamTransport.connect({ url: config.NATS_URL, stream: config.EVENTS_STREAM, subjectPrefix: config.EVENTS_SUBJECT_PREFIX, logger });
  try {
    // Built, not started: no background work runs, and a replay emits no events to relay.
    const built = await module.build({
      config,
      orm,
      transport,
      live: new InProcessLiveBus(),
      jobs: new InProcessJobQueue(logger),
      logger,
      topology: { mode: 'DISTRIBUTED', subgraphs: () => [], publicUrl: () => config.PUBLIC_URL ?? `http://${config.HOST}:${config.PORT}` },
      onEventsCommitted: () => {},
    });
    const definition = built.consumers?.find((candidate) => candidate.name === name);
    if (!definition?.reset) {
      const replayable = (built.consumers ?? []).filter((candidate) => candidate.reset).map((candidate) => candidate.name);
      throw new Error(`${definition ? `Consumer ${name} cannot be replayed (it has no reset)` : `${module.name} has no consumer named ${name}`}; replayable: ${replayable.join(', ') || 'none'}`);
    }
    const started = Date.now();
    let lastReport = started;
    logger.info({ consumer: name }, 'replay started');
    const { events, skipped } = await new EventConsumer({ definition, orm, transport, logger, serviceName: module.name }).rebuild((handled) => {
      if (Date.now() - lastReport < 1000) return;
      lastReport = Date.now();
      logger.info({ consumer: name, handled }, 'replay progress');
    });
    const ms = Date.now() - started;
    logger.info({ consumer: name, events, skipped, ms }, 'replay finished');
    process.stderr.write(`Replayed ${events} events into ${name} in ${ms} ms.${skipped.length ? ` Left out ${skipped.length} its handler fails on: ${skipped.join(', ')}` : ''}\n`);
  } finally {
    await transport.close();
    await orm.close();
  }
} catch (error) {
  exitCode = 1;
  logger.error({ err: error, consumer: name }, 'replay failed');
} finally {
  await database.stop();
}
process.exit(exitCode);
