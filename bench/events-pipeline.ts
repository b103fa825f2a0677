import { performance } from 'node:perf_hooks';
import type { MikroORM } from '@mikro-orm/postgresql';
import { migrate, openDatabase } from '../platform/db/database.js';
import { SchemaMigration } from '../platform/db/migration.js';
import { EventConsumer } from '../platform/events/consumer.js';
import type { ConsumerDefinition } from '../platform/events/consumer.types.js';
import { CONSUMER_DDL } from '../platform/events/inbox.js';
import { recordEvents } from '../platform/events/outbox.js';
import { OUTBOX_DDL } from '../platform/events/outbox.entity.js';
import type { OutboxRelay } from '../platform/events/relay.js';
import type { EventTransport } from '../platform/events/transport.js';
import type { Logger } from '../platform/log.js';
import { Phase, TimedRelay, TimedTransport } from './events-timing.js';

/**
 * One transport's run of the events bench: producers commit events to an outbox in PostgreSQL,
 * the OutboxRelay publishes them, an EventConsumer upserts a per-user counter (with its inbox).
 * Everything is the production code; only the transport is wrapped, to take timestamps.
 */

const EVENT_TYPE = 'bench.counter.incremented';
const USERS = 1_000;
/** No new handled event for this long means the pipeline is stuck: fail rather than hang. */
const STALL_MS = 30_000;

export interface PipelineOptions {
  name: string;
  databaseUrl: string;
  /** A fresh transport, closed by the run. */
  transport: EventTransport;
  events: number;
  batch: number;
  producers: number;
  /** Events per second the producers offer, all together; 0: as fast as they can (a burst). */
  rate: number;
  warmup: number;
  /** Consumer without handleMany: one statement per event. */
  perEvent: boolean;
  log: Logger;
  /** For the platform's own components (quiet unless LOG_LEVEL says otherwise). */
  platformLog: Logger;
  signal: AbortSignal;
}

export interface PipelineResult {
  name: string;
  events: number;
  seconds: number;
  latenciesMs: number[];
  /** CPU time of this whole process (producers, relay, consumer share its one event loop). */
  cpuMs: number;
  /** Where the time went, for the diagnosis lines under the table. */
  relay: { flushes: number; rows: number; flushMs: number; publishMs: number };
  consumer: { batches: number; events: number; batchMs: number };
  /** Correctness problems found at the end; empty when all is well. */
  problems: string[];
}

class BenchTables extends SchemaMigration {
  override up(): void {
    this.sql(
      ...OUTBOX_DDL,
      ...CONSUMER_DDL,
      `create table "user_counter" ("user_id" text primary key, "count" bigint not null, "updated_at" timestamptz not null)`,
    );
  }
}

/**
 * A read model of the kind most consumers feed: a counter per user. `handleMany` (the
 * platform's batch path) adds a whole batch in one statement; `handle` is the one-event form
 * the platform falls back to (and the shape `--per-event` measures).
 */
function counterConsumer(schema: string, name: string, perEvent: boolean): ConsumerDefinition {
  const upsert = (rows: number) =>
    `insert into "${schema}"."user_counter" ("user_id", "count", "updated_at") values ${Array.from({ length: rows }, () => '(?, ?::bigint, now())').join(', ')}
     on conflict ("user_id") do update set "count" = "user_counter"."count" + excluded."count", "updated_at" = now()`;
  return {
    name,
    types: ['bench.counter.*'],
    async handle(event, ctx) {
      const { userId } = event.payload as { userId: string };
      await ctx.em.getConnection().execute(upsert(1), [userId, 1], 'run', ctx.em.getTransactionContext());
    },
    ...(perEvent
      ? {}
      : {
          async handleMany(events, ctx) {
            const counts = new Map<string, number>();
            for (const event of events) {
              const { userId } = event.payload as { userId: string };
              counts.set(userId, (counts.get(userId) ?? 0) + 1);
            }
            await ctx.em.getConnection().execute(upsert(counts.size), [...counts].flat(), 'run', ctx.em.getTransactionContext());
          },
        }),
  };
}

export async function runPipeline(options: PipelineOptions): Promise<PipelineResult> {
  const { name, log } = options;
  const schema = `bench_${name.replace(/\W/g, '_')}`;
  const durable = `bench-counter-${name}`;
  const orm = await openDatabase({
    url: options.databaseUrl,
    schema,
    entities: [],
    migrations: [{ name: 'bench_tables', class: BenchTables }],
    logger: options.platformLog,
    poolMax: options.producers + 4,
  }).catch(async (error: unknown) => {
    await options.transport.close();
    throw error;
  });
  const transport = new TimedTransport(options.transport);
  const relay = new TimedRelay(orm, transport, options.platformLog);
  const consumer = new EventConsumer({
    definition: counterConsumer(schema, durable, options.perEvent),
    orm,
    transport,
    logger: options.platformLog,
    serviceName: 'bench',
    onEventsCommitted: () => relay.notify(),
  });
  try {
    await migrate(orm);
    await consumer.start();
    relay.start();
    if (options.warmup > 0) {
      log.info({ transport: name, events: options.warmup }, 'warm-up');
      await runPhase(orm, relay, transport, { ...options, events: options.warmup, rate: 0 });
      // The consumer is idle (every event handled); start the measured phase from empty tables.
      await orm.em.fork().getConnection().execute(`truncate "${schema}"."user_counter", "${schema}"."inbox"`);
    }
    log.info({ transport: name, events: options.events, batch: options.batch, producers: options.producers, rate: options.rate || 'burst' }, 'measuring');
    const cpuBefore = process.cpuUsage();
    const phase = await runPhase(orm, relay, transport, options);
    const cpu = process.cpuUsage(cpuBefore);
    await consumer.stop();
    await relay.stop();
    let lastHandled = 0;
    for (const at of phase.handledAt.values()) lastHandled = Math.max(lastHandled, at);
    const latenciesMs = [...phase.handledAt].map(([id, at]) => at - phase.committedAt.get(id)!);
    return {
      name,
      events: phase.handledAt.size,
      seconds: (lastHandled - phase.firstCommit) / 1000,
      latenciesMs,
      cpuMs: (cpu.user + cpu.system) / 1000,
      relay: { flushes: phase.flushes, rows: phase.flushRows, flushMs: phase.flushMs, publishMs: phase.publishMs },
      consumer: { batches: phase.batches, events: phase.batchEvents, batchMs: phase.batchMs },
      problems: await verify(orm, schema, durable, options.events),
    };
  } finally {
    await consumer.stop();
    await relay.stop();
    await transport.close();
    await orm.close();
  }
}

/** Produces `events`, waits until all are handled; logs progress every second. */
async function runPhase(orm: MikroORM, relay: OutboxRelay, transport: TimedTransport, options: PipelineOptions): Promise<Phase> {
  const phase = new Phase();
  transport.phase = phase;
  let producerError: unknown = null;
  const producing = produce(orm, relay, phase, options).catch((error: unknown) => void (producerError = error));
  let lastCount = 0;
  let lastChange = performance.now();
  let lastLog = performance.now();
  while (phase.handledAt.size < options.events) {
    options.signal.throwIfAborted();
    if (producerError) throw producerError;
    await new Promise((resolve) => setTimeout(resolve, 50));
    const now = performance.now();
    if (phase.handledAt.size !== lastCount) [lastCount, lastChange] = [phase.handledAt.size, now];
    if (now - lastChange > STALL_MS) throw new Error(`${options.name}: no event handled for ${STALL_MS / 1000} s (${lastCount}/${options.events} handled)`);
    if (now - lastLog >= 1000) {
      lastLog = now;
      const { committedAt, published, handledAt } = phase;
      options.log.info({ transport: options.name, committed: committedAt.size, published, handled: handledAt.size, total: options.events }, 'progress');
    }
  }
  await producing;
  return phase;
}

/**
 * `producers` concurrent loops, each committing `batch` events per transaction through
 * recordEvents and nudging the relay after commit, as a subgraph's ctx.transaction() does.
 * With a rate, each transaction waits for its turn on the schedule first.
 */
async function produce(orm: MikroORM, relay: OutboxRelay, phase: Phase, options: PipelineOptions): Promise<void> {
  let next = 0;
  const start = performance.now();
  const producer = async () => {
    while (next < options.events && !options.signal.aborted) {
      const from = next;
      const size = Math.min(options.batch, options.events - from);
      next += size;
      const wait = options.rate ? start + (from / options.rate) * 1000 - performance.now() : 0;
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const events = Array.from({ length: size }, (_, i) => {
        const userId = `user-${(from + i) % USERS}`;
        return { type: EVENT_TYPE, userId, payload: { userId, amount: 1 } };
      });
      const envelopes = await orm.em.fork().transactional(async (em) => recordEvents(em, { serviceName: 'bench', correlationId: `bench-${from}` }, events));
      const at = performance.now();
      phase.firstCommit = Math.min(phase.firstCommit, at);
      for (const envelope of envelopes) phase.committedAt.set(envelope.id, at);
      relay.notify();
    }
  };
  await Promise.all(Array.from({ length: options.producers }, producer));
}

async function verify(orm: MikroORM, schema: string, durable: string, expected: number): Promise<string[]> {
  const one = async (query: string, params: unknown[] = []) => {
    const [row] = await orm.em.fork().getConnection().execute<{ n: string | number }[]>(query, params);
    return Number(row?.n ?? NaN);
  };
  const counterSum = await one(`select coalesce(sum("count"), 0) as n from "${schema}"."user_counter"`);
  const inboxRows = await one(`select count(*) as n from "${schema}"."inbox" where "consumer" = ?`, [durable]);
  const unpublished = await one(`select count(*) as n from "${schema}"."outbox" where "published_at" is null`);
  const deadLetters = await one(`select count(*) as n from "${schema}"."dead_letter"`);
  const problems: string[] = [];
  if (counterSum !== expected) problems.push(`counter sum is ${counterSum}, expected ${expected}`);
  if (inboxRows !== expected) problems.push(`inbox has ${inboxRows} rows, expected ${expected}`);
  if (unpublished !== 0) problems.push(`${unpublished} outbox rows left unpublished`);
  if (deadLetters !== 0) problems.push(`${deadLetters} dead letters`);
  return problems;
}
