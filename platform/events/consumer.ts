import { randomUUID } from 'node:crypto';
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import { isUuid } from '../formats.js';
import type { Logger } from '../log.js';
import type { ConsumerDefinition } from './consumer.types.js';
import type { EventEnvelope, NewEvent } from './envelope.js';
import { recordEvents } from './outbox.js';
import type { Metrics } from '../telemetry/metrics.js';
import { trace } from '@opentelemetry/api';
import { contextFrom, inSpan, SpanKind, type SpanOptions } from '../telemetry/tracing.js';
import type { BatchResult, Consumption, Delivery, EventTransport } from './transport.js';

export interface EventConsumerOptions {
  definition: ConsumerDefinition;
  orm: MikroORM;
  transport: EventTransport;
  logger: Logger;
  /** The subgraph: the serviceName of the events handlers emit. */
  serviceName: string;
  /** Called after a commit that emitted events (the outbox relay's notify). */
  onEventsCommitted?: () => void;
  /** Most events per transaction. Default 100. */
  maxBatch?: number;
  /** Attempts per event before it becomes a dead letter. Default 5. */
  maxDeliver?: number;
  backoffMs?: (redelivery: number) => number;
  /** Counts the events handled (storyloom_events_handled_total). */
  metrics?: Metrics;
}

export interface DeadLetter {
  id: string;
  consumer: string;
  eventId: string;
  eventType: string;
  envelope: EventEnvelope;
  error: string;
  attempts: number;
  failedAt: Date;
  replayedAt: Date | null;
}

export type ReplayOutcome = { ok: true; deadLetter: DeadLetter } | { ok: false; code: 'NOT_FOUND' | 'ALREADY_REPLAYED' | 'HANDLER_FAILED'; message: string };

/** Thrown inside the handling transaction when handleMany failed: go one at a time. */
class ManyFailed extends Error {
  constructor(override readonly cause: unknown) {
    super('handleMany failed');
  }
}

/** Thrown inside the handling transaction to say which event failed. */
class HandlerFailed extends Error {
  constructor(
    readonly index: number,
    override readonly cause: unknown,
  ) {
    super(`event handler failed at index ${index}`);
  }
}

/**
 * Runs one ConsumerDefinition as a durable consumer with exactly-once effect.
 *
 * Each batch the transport hands over is applied in one transaction: the event ids go into the
 * inbox (`on conflict do nothing`), only the events that were not there yet are handled, and
 * the events the handlers emit go to the outbox. A redelivered or re-published event finds its
 * inbox row and changes nothing; a crash before commit leaves nothing behind to double.
 *
 * When a handler throws, the batch is rolled back and the events before the failing one are
 * applied again on their own, so the transport can acknowledge them and retry just the failing
 * one (with backoff, ahead of the rest). After the last attempt the event is written to
 * `dead_letter`, whole, to be listed and replayed by an operator.
 */
export class EventConsumer {
  private consumption: Consumption | null = null;
  /** When this process last committed a batch. */
  lastHandledAt: Date | null = null;
  private readonly log: Logger;
  private readonly schema: string;

  constructor(private readonly options: EventConsumerOptions) {
    this.log = options.logger.child({ consumer: options.definition.name });
    this.schema = schemaOf(options.orm);
  }

  get name(): string {
    return this.options.definition.name;
  }

  async start(): Promise<void> {
    if (this.consumption) return;
    const { definition, transport } = this.options;
    this.consumption = await transport.consume({
      durable: definition.name,
      types: definition.types,
      maxBatch: this.options.maxBatch ?? 100,
      maxDeliver: this.options.maxDeliver ?? 5,
      backoffMs: this.options.backoffMs,
      handleBatch: (batch) => {
        const again = batch.filter((delivery) => delivery.deliveryCount > 1).length;
        if (again) this.options.metrics?.redeliveries.inc({ subgraph: this.options.serviceName, consumer: this.name }, again);
        return this.handleBatch(batch);
      },
      onDeadLetter: (event, error) => this.recordDeadLetter(event, error),
    });
    this.log.info({ types: definition.types }, 'event consumer started');
  }

  async stop(): Promise<void> {
    await this.consumption?.stop();
    this.consumption = null;
  }

  /** Applies a batch in one transaction; see the class comment for what happens on failure. */
  async handleBatch(batch: Delivery[], together = true): Promise<BatchResult> {
    const events = batch.map((delivery) => delivery.event);
    try {
      await this.apply(events, undefined, together);
      this.lastHandledAt = new Date();
      this.options.metrics?.eventsHandled.inc({ subgraph: this.options.serviceName, consumer: this.name }, events.length);
      return { done: events.length };
    } catch (error) {
      if (error instanceof ManyFailed) {
        this.log.warn({ err: error.cause, events: events.length }, 'handleMany failed; handling the events one at a time');
        return this.handleBatch(batch, false);
      }
      if (error instanceof HandlerFailed) {
        if (error.index === 0) return { done: 0, error: error.cause };
        const before = await this.handleBatch(batch.slice(0, error.index), false);
        return before.done === error.index ? { done: error.index, error: error.cause } : before;
      }
      // The inbox, the lock or the commit failed. With the database down, no event is to blame.
      if (!(await this.databaseReachable())) return { done: 0, error, systemic: true };
      if (batch.length === 1) return { done: 0, error };
      // With it up, one of the events is (a deferred constraint at commit, say): one at a time finds which.
      for (const [index, delivery] of batch.entries()) {
        const alone = await this.handleBatch([delivery], false);
        if (alone.done === 0) return { ...alone, done: index };
      }
      return { done: batch.length };
    }
  }

  /**
   * Writes (or refreshes) the dead letter of an event this consumer gave up on. Not for an
   * event the inbox shows handled meanwhile, and a replayed dead letter stays replayed.
   */
  async recordDeadLetter(event: EventEnvelope, error: unknown): Promise<void> {
    const attempts = this.options.maxDeliver ?? 5;
    await this.options.orm.em.fork().getConnection().execute(
      `insert into "${this.schema}"."dead_letter"
         ("id", "consumer", "event_id", "event_type", "envelope", "error", "attempts", "failed_at")
       select ?, ?, ?, ?, ?, ?, ?, ?
       where not exists (select 1 from "${this.schema}"."inbox" where "consumer" = ? and "event_id" = ?)
       on conflict ("consumer", "event_id") do update
         set "error" = excluded."error", "attempts" = "dead_letter"."attempts" + excluded."attempts", "failed_at" = excluded."failed_at"
         where "dead_letter"."replayed_at" is null`,
      // Times in milliseconds, as JavaScript holds them: page cursors compare them exactly.
      [randomUUID(), this.name, event.id, event.type, JSON.stringify(event), describe(error), attempts, new Date(), this.name, event.id],
    );
  }

  /**
   * Runs a dead letter's event through the handler again (once its cause is fixed). Success
   * marks it replayed in the same transaction; failure updates its error and attempts.
   */
  async replayDeadLetter(id: string): Promise<ReplayOutcome> {
    const deadLetter = (await listDeadLetters(this.options.orm, { id, consumer: this.name }))[0];
    if (!deadLetter) return { ok: false, code: 'NOT_FOUND', message: `No dead letter ${id} for consumer ${this.name}` };
    if (deadLetter.replayedAt) return { ok: false, code: 'ALREADY_REPLAYED', message: `Dead letter ${id} was replayed at ${deadLetter.replayedAt.toISOString()}` };
    try {
      await this.apply([deadLetter.envelope], async (em) => {
        await em.getConnection().execute(`update "${this.schema}"."dead_letter" set "replayed_at" = now() where "id" = ?`, [id], 'run', em.getTransactionContext());
      });
    } catch (error) {
      const cause = error instanceof HandlerFailed ? error.cause : error;
      await this.options.orm.em.fork().getConnection().execute(
        `update "${this.schema}"."dead_letter" set "error" = ?, "attempts" = "attempts" + 1, "failed_at" = ? where "id" = ?`,
        [describe(cause), new Date(), id],
      );
      this.log.warn({ err: cause, deadLetterId: id, eventId: deadLetter.eventId }, 'dead letter replay failed');
      return { ok: false, code: 'HANDLER_FAILED', message: describe(cause) };
    }
    this.log.info({ deadLetterId: id, eventId: deadLetter.eventId }, 'dead letter replayed');
    const [replayed] = await listDeadLetters(this.options.orm, { id, consumer: this.name });
    return { ok: true, deadLetter: replayed! };
  }

  /**
   * Rebuilds the consumer's read model from the stream: in one transaction, `reset`, forget the
   * inbox, and handle every event the stream holds from the start. Live handling of this
   * consumer waits on the same lock meanwhile, and resumes with what came after. An event whose
   * handler fails is left out (as it was live: it is a dead letter) and reported in `skipped`.
   */
  async rebuild(onProgress?: (handled: number) => void): Promise<{ events: number; skipped: string[] }> {
    const { definition, orm, transport } = this.options;
    const reset = definition.reset;
    if (!reset) throw new Error(`consumer ${definition.name} has no reset(): it cannot be replayed`);
    let handled = 0;
    const skipped: string[] = [];
    await orm.em.fork().transactional(async (em) => {
      await this.lock(em, 'exclusive');
      await reset.call(definition, em);
      await em.getConnection().execute(`delete from "${this.schema}"."inbox" where "consumer" = ?`, [this.name], 'run', em.getTransactionContext());
      // Each chunk in a savepoint, so a failing event rolls back alone and the rebuild goes on.
      const applyChunk = async (events: EventEnvelope[]) => {
        let rest = events;
        let together = true;
        while (rest.length) {
          try {
            await em.transactional((inner) => this.applyIn(inner, rest, true, together));
            handled += rest.length;
            rest = [];
          } catch (error) {
            if (error instanceof ManyFailed) {
              together = false;
              continue;
            }
            if (!(error instanceof HandlerFailed)) throw error;
            const before = rest.slice(0, error.index);
            if (before.length) await em.transactional((inner) => this.applyIn(inner, before, true));
            handled += before.length;
            const failed = rest[error.index]!;
            skipped.push(failed.id);
            this.log.warn({ err: error.cause, eventId: failed.id, type: failed.type }, 'rebuild left out an event its handler fails on');
            rest = rest.slice(error.index + 1);
          }
        }
        // The identity map would otherwise hold every entity of the rebuild.
        em.clear();
        onProgress?.(handled);
      };
      let batch: EventEnvelope[] = [];
      for await (const { event } of transport.history(definition.types)) {
        batch.push(event);
        if (batch.length === 500) {
          await applyChunk(batch);
          batch = [];
        }
      }
      if (batch.length) await applyChunk(batch);
    });
    return { events: handled, skipped };
  }

  /** One transaction: inbox, handlers, outbox. `also` runs last in it. */
  private async apply(events: EventEnvelope[], also?: (em: EntityManager) => Promise<void>, together = false): Promise<void> {
    const emitted = await this.options.orm.em.fork().transactional(async (em) => {
      // Shared: replicas of this consumer do not wait on each other, only on a rebuild.
      await this.lock(em, 'shared');
      const count = await this.applyIn(em, events, false, together);
      await also?.(em);
      return count;
    });
    if (emitted) this.options.onEventsCommitted?.();
  }

  /**
   * Handles the events not yet in the inbox, `together` with the definition's handleMany when
   * it has one; returns how many events the handlers emitted.
   */
  private async applyIn(em: EntityManager, events: EventEnvelope[], replaying: boolean, together = false): Promise<number> {
    if (!events.length) return 0;
    const { definition, serviceName } = this.options;
    const fresh = await this.claim(em, events);
    if (together && definition.handleMany && fresh.size > 1) {
      // Deleted on first use: the same event twice in one batch is handled once.
      const todo = events.filter((event) => fresh.delete(event.id));
      const handleMany = async () => {
        await definition.handleMany!(todo, { em, log: this.log, replaying });
        await em.flush();
      };
      try {
        // One span for the batch, linked to the trace of each event in it.
        const links = todo.map((event) => trace.getSpanContext(contextFrom(event.trace))).filter((link) => link !== undefined).map((context) => ({ context }));
        await (replaying ? handleMany() : inSpan(`consume ${todo.length} events`, { kind: SpanKind.CONSUMER, links, attributes: { 'messaging.consumer.group.name': this.name, 'messaging.batch.message_count': todo.length, 'storyloom.subgraph': serviceName } }, handleMany));
      } catch (error) {
        throw new ManyFailed(error);
      }
      return 0;
    }
    let emitted = 0;
    for (const [index, event] of events.entries()) {
      // Deleted on first use: the same event twice in one batch is handled once too.
      if (!fresh.delete(event.id)) {
        this.log.debug({ eventId: event.id, type: event.type }, 'event already handled; skipped');
        continue;
      }
      const caused: NewEvent[] = [];
      const handle = async () => {
        await definition.handle(event, {
          em,
          event,
          emit: (newEvent) => void caused.push(newEvent),
          log: this.log.child({ eventId: event.id, correlationId: event.correlationId }),
          replaying,
        });
        if (!replaying && caused.length) {
          // Recorded in the span, so the events it causes carry it on (their `trace` headers).
          const origin = { serviceName, correlationId: event.correlationId, causationId: event.id };
          await recordEvents(em, origin, caused.map((newEvent) => ({ ...newEvent, userId: newEvent.userId === undefined ? event.userId : newEvent.userId })));
          emitted += caused.length;
        }
        await em.flush();
      };
      try {
        // A replay re-handles the whole stream: no span per event of it.
        await (replaying ? handle() : inSpan(`consume ${event.type}`, consumerSpan(event, this.name, serviceName), handle));
      } catch (error) {
        throw new HandlerFailed(index, error);
      }
    }
    return emitted;
  }

  /** Inserts the ids into the inbox; returns those that were not there before. */
  private async claim(em: EntityManager, events: EventEnvelope[]): Promise<Set<string>> {
    const ids = [...new Set(events.map((event) => event.id))];
    const rows = await em.getConnection().execute<{ event_id: string }[]>(
      `insert into "${this.schema}"."inbox" ("consumer", "event_id")
       select ?, "id" from unnest(array[${ids.map(() => '?').join(', ')}]::text[]) as "ids" ("id")
       on conflict do nothing
       returning "event_id"`,
      [this.name, ...ids],
      'all',
      em.getTransactionContext(),
    );
    return new Set(rows.map((row) => row.event_id));
  }

  /** Two-key advisory lock: (this schema's consumers, this consumer), apart from single-key locks. */
  private async lock(em: EntityManager, mode: 'shared' | 'exclusive'): Promise<void> {
    const fn = mode === 'shared' ? 'pg_advisory_xact_lock_shared' : 'pg_advisory_xact_lock';
    await em.getConnection().execute(`select ${fn}(hashtext(?), hashtext(?))`, [`${this.schema}.consumers`, this.name], 'all', em.getTransactionContext());
  }

  private async databaseReachable(): Promise<boolean> {
    try {
      await this.options.orm.em.fork().getConnection().execute('select 1');
      return true;
    } catch {
      return false;
    }
  }
}

export interface DeadLetterQuery {
  id?: string;
  consumer?: string;
  /** Include replayed ones. Default false. */
  all?: boolean;
  limit?: number;
  /** Only those before this (failedAt, id), in the listing order: the next page. */
  before?: { failedAt: string; id: string };
}

/** The subgraph's dead letters, newest first. */
export async function listDeadLetters(orm: MikroORM, query: DeadLetterQuery = {}): Promise<DeadLetter[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  if (query.id) {
    // Ids are UUIDs; anything else cannot match, and must not reach the uuid cast.
    if (!isUuid(query.id)) return [];
    where.push(`"id" = ?`);
    params.push(query.id);
  }
  if (query.consumer) {
    where.push(`"consumer" = ?`);
    params.push(query.consumer);
  }
  if (!query.all && !query.id) where.push(`"replayed_at" is null`);
  if (query.before) {
    where.push(`("failed_at", "id") < (?::timestamptz, ?::uuid)`);
    params.push(query.before.failedAt, isUuid(query.before.id) ? query.before.id : '00000000-0000-0000-0000-000000000000');
  }
  const rows = await orm.em.fork().getConnection().execute<DeadLetterRow[]>(
    `select * from "${schemaOf(orm)}"."dead_letter" ${where.length ? `where ${where.join(' and ')}` : ''}
     order by "failed_at" desc, "id" desc limit ${Math.max(1, Math.min(query.limit ?? 100, 1000))}`,
    params,
  );
  return rows.map((row) => ({
    id: row.id,
    consumer: row.consumer,
    eventId: row.event_id,
    eventType: row.event_type,
    envelope: row.envelope,
    error: row.error,
    attempts: row.attempts,
    failedAt: new Date(row.failed_at),
    replayedAt: row.replayed_at ? new Date(row.replayed_at) : null,
  }));
}

/** Open (not replayed) dead letters per consumer. */
export async function countOpenDeadLetters(orm: MikroORM): Promise<Map<string, number>> {
  const rows = await orm.em
    .fork()
    .getConnection()
    .execute<{ consumer: string; open: number }[]>(`select "consumer", count(*)::int as "open" from "${schemaOf(orm)}"."dead_letter" where "replayed_at" is null group by "consumer"`);
  return new Map(rows.map((row) => [row.consumer, row.open]));
}

interface DeadLetterRow {
  id: string;
  consumer: string;
  event_id: string;
  event_type: string;
  envelope: EventEnvelope;
  error: string;
  attempts: number;
  failed_at: string | Date;
  replayed_at: string | Date | null;
}

function schemaOf(orm: MikroORM): string {
  const schema = orm.config.get('schema');
  if (!schema) throw new Error('event consumers need the ORM `schema` option');
  return schema;
}

/**
 * What an operator reads: the message, and the stack's first frames for where. Bounded, and
 * without NUL (which PostgreSQL text refuses), so recording it cannot fail on its content.
 */
function describe(error: unknown): string {
  const text = error instanceof Error ? (error.stack ?? `${error.name}: ${error.message}`).split('\n').slice(0, 6).join('\n') : String(error);
  return text.replaceAll('\u0000', '').slice(0, 4000);
}

/** The span of one event's handling: a child of the span that caused the event. */
function consumerSpan(event: EventEnvelope, consumer: string, subgraph: string): SpanOptions {
  return {
    kind: SpanKind.CONSUMER,
    parent: contextFrom(event.trace),
    attributes: {
      'messaging.system': 'storyloom-events',
      'messaging.operation.type': 'process',
      'messaging.destination.name': `events.${event.type}`,
      'messaging.consumer.group.name': consumer,
      'messaging.message.id': event.id,
      'storyloom.subgraph': subgraph,
    },
  };
}
