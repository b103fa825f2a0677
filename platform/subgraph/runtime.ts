import type { Server } from 'node:http';
import type { MikroORM } from '@mikro-orm/postgresql';
import type { Config } from '../config.js';
import { migrate, openDatabase } from '../db/database.js';
import { EventConsumer } from '../events/consumer.js';
import { OutboxRelay } from '../events/relay.js';
import type { ConsumerStatus, EventTransport } from '../events/transport.js';
import type { JobQueue } from '../jobs/queue.js';
import type { LiveBus } from '../live/live.js';
import { listen } from '../http/server.js';
import { Shutdown } from '../lifecycle.js';
import type { Logger } from '../log.js';
import { CONSUMER_ADMIN_PATH, consumerAdminRoute } from './consumer-admin.js';
import { subgraphTypeDefs, type SubgraphModule, type Topology } from './module.js';
import { createSubgraphServer } from './server.js';
import { Metrics } from '../telemetry/metrics.js';

export interface StartOptions {
  config: Config;
  databaseUrl: string;
  transport: EventTransport;
  live: LiveBus;
  jobs: JobQueue;
  logger: Logger;
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Apply pending migrations first (all-in-one mode and tests; distributed mode runs `npm run migrate`). */
  migrate?: boolean;
  /** Start the outbox relay (tests turn it off to show that nothing is lost while it is down). */
  relay?: boolean;
  /** Where the other subgraphs are (for the audit subgraph's status and dead-letter views). */
  topology: Topology;
  /** The process's metrics (shared by every subgraph of an all-in-one process); else its own. */
  metrics?: Metrics;
  /** True once the process is stopping, before this subgraph is closed: `/ready` answers 503 from then on. */
  stopping?: () => boolean;
}

export interface RunningSubgraph {
  name: string;
  url: string;
  orm: MikroORM;
  relay: OutboxRelay;
  consumers: EventConsumer[];
  http: Server;
  close(): Promise<void>;
}

/**
 * Opens the subgraph's database, builds it, and listens: the same path in both modes. Whatever
 * was started is undone in reverse order on close, or at once if a later step fails.
 */
export async function startSubgraph(module: SubgraphModule, options: StartOptions): Promise<RunningSubgraph> {
  const logger = options.logger.child({ subgraph: module.name });
  const shutdown = new Shutdown();
  const close = () => shutdown.close();
  try {
    const orm = await openDatabase({
      url: options.databaseUrl,
      schema: module.name,
      entities: module.entities,
      migrations: module.migrations,
      logger,
    });
    shutdown.add('database', () => orm.close());
    if (options.migrate) {
      const applied = await migrate(orm);
      if (applied.length) logger.info({ applied }, 'migrations applied');
    }
    const metrics = options.metrics ?? new Metrics();
    let migrated = false;
    const relay = new OutboxRelay(orm, options.transport, logger, options.config.OUTBOX_SWEEP_MS);
    shutdown.add('outbox relay', () => relay.stop());
    const built = await module.build({
      config: options.config,
      orm,
      transport: options.transport,
      live: options.live,
      jobs: options.jobs,
      logger,
      topology: options.topology,
      onEventsCommitted: () => relay.notify(),
    });
    const consumers = (built.consumers ?? []).map(
      (definition) =>
        new EventConsumer({ definition, orm, transport: options.transport, logger, serviceName: module.name, onEventsCommitted: () => relay.notify(), metrics }),
    );
    for (const remove of observeBacklogs(module.name, orm, options.transport, consumers, metrics)) shutdown.add('metrics', remove);
    const { http, apollo } = await createSubgraphServer({
      name: module.name,
      typeDefs: subgraphTypeDefs(module.name),
      resolvers: built.resolvers,
      orm,
      relay,
      internalSecret: options.config.INTERNAL_SECRET,
      maxBodyBytes: options.config.MAX_BODY_BYTES,
      logger,
      metrics,
      readiness: {
        events: () => options.transport.ping(),
        // Once applied, migrations stay applied: checked until the first success, then no more.
        migrations: async () => {
          if (migrated) return;
          const pending = await orm.getMigrator().getPendingMigrations();
          if (pending.length) throw new Error(`${pending.length} pending: ${pending.map((m) => m.name).join(', ')}`);
          migrated = true;
        },
      },
      stopping: () => shutdown.stopping || (options.stopping?.() ?? false),
      routes: {
        ...built.routes,
        [CONSUMER_ADMIN_PATH]: consumerAdminRoute({ subgraph: module.name, orm, consumers, internalSecret: options.config.INTERNAL_SECRET, logger }),
      },
    });
    // Stopping Apollo drains the HTTP server: in-flight requests finish before the ORM closes.
    shutdown.add('http server', () => apollo.stop());
    const url = await listen(http, options.port, options.host);
    if (options.relay !== false) {
      // The in-process stream is new with each process: what the last one published may not
      // have been handled. Inboxes make the handled ones no-ops.
      if (options.transport.kind === 'IN_PROCESS') await relay.republishRetained();
      relay.start();
    }
    // Stopped before the database closes; a batch in flight finishes (or rolls back) first.
    shutdown.add('event consumers', () => Promise.all(consumers.map((consumer) => consumer.stop())).then(() => undefined));
    for (const consumer of consumers) await consumer.start();
    // Registered before starting, so consumers half-started by a failing start() are stopped too.
    if (built.stop) shutdown.add('background work', () => built.stop!());
    await built.start?.();
    return { name: module.name, url, orm, relay, consumers, http, close };
  } catch (error) {
    await close().catch((closeError: unknown) => logger.error({ err: closeError }, 'cleanup after a failed start failed'));
    throw error;
  }
}

/**
 * The subgraph's backlogs as metrics, read when Prometheus scrapes: its outbox, its dead
 * letters, and where its durable consumers stand in the stream. Returns how to stop reporting.
 */
function observeBacklogs(subgraph: string, orm: MikroORM, transport: EventTransport, consumers: EventConsumer[], metrics: Metrics): (() => void)[] {
  const sql = (query: string) => orm.em.fork().getConnection().execute<Record<string, string>[]>(query);
  const names = new Set(consumers.map((consumer) => consumer.name));
  // Read once per scrape for both gauges (a JetStream API call per consumer).
  let reading: { at: number; statuses: Promise<ConsumerStatus[]> } | null = null;
  const standing = () => {
    if (!reading || Date.now() - reading.at > 1_000) {
      reading = { at: Date.now(), statuses: transport.consumerStatus().then((all) => all.filter((status) => names.has(status.name))) };
    }
    return reading.statuses;
  };
  return [
    metrics.outboxBacklog.add(async () => {
      const [row] = await sql(`select count(*)::int as n from "${subgraph}"."outbox" where "published_at" is null`);
      return [[{ subgraph }, Number(row?.n ?? 0)]];
    }),
    metrics.deadLetters.add(async () => {
      const rows = await sql(`select "consumer", count(*)::int as n from "${subgraph}"."dead_letter" where "replayed_at" is null group by "consumer"`);
      return rows.map((row) => [{ subgraph, consumer: row.consumer! }, Number(row.n)]);
    }),
    metrics.consumerLag.add(async () => (await standing()).map((status) => [{ consumer: status.name }, status.pending])),
    metrics.consumerInFlight.add(async () => (await standing()).map((status) => [{ consumer: status.name }, status.inFlight])),
  ];
}
