import type { MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from '../log.js';
import type { EventEnvelope } from './envelope.js';
import { OutboxRecord } from './outbox.entity.js';
import type { EventTransport } from './transport.js';

const BATCH = 250;
/** Published rows are kept this long for inspection, then deleted by the sweep. */
const RETENTION_MS = 7 * 24 * 3600_000;
const PRUNE_EVERY_MS = 3600_000;

/**
 * Moves committed outbox rows to the event transport. `notify()` right after a commit makes
 * publishing immediate; the sweep on an interval catches whatever a crash or a transport
 * outage left behind.
 *
 * One relay per subgraph publishes at a time (a transaction-scoped advisory lock), so replicas
 * never interleave batches and events leave in outbox order. Should a relay die after
 * publishing but before marking, the rows go out again with the same event ids, which the
 * transport de-duplicates. Known limit: `position` is taken at insert, so two transactions
 * committing in the opposite order of their inserts can publish in insert order.
 */
export class OutboxRelay {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = true;
  private lastPrune = 0;

  constructor(
    private readonly orm: MikroORM,
    private readonly transport: Pick<EventTransport, 'publish'>,
    private readonly logger: Logger,
    private readonly sweepMs = 1000,
  ) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.timer = setInterval(() => this.notify(), this.sweepMs);
    this.timer.unref();
    this.notify();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  /** Asks for a flush soon; concurrent asks coalesce into at most one more pass. */
  notify(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.drain().finally(() => {
      this.running = null;
      if (this.again && !this.stopped) {
        this.again = false;
        this.notify();
      }
    });
  }

  private async drain(): Promise<void> {
    try {
      while ((await this.flush()) === BATCH && !this.stopped);
      if (Date.now() - this.lastPrune > PRUNE_EVERY_MS) await this.prune();
    } catch (error) {
      this.logger.warn({ err: error }, 'outbox relay could not reach the database; will retry on the next sweep');
    }
  }

  /** Publishes one batch of unpublished events in order; returns how many were published. */
  async flush(): Promise<number> {
    const table = this.outboxTable;
    return this.orm.em.fork().transactional(async (em) => {
      const connection = em.getConnection();
      const tx = em.getTransactionContext();
      const [lock] = await connection.execute<{ locked: boolean }[]>(
        `select pg_try_advisory_xact_lock(hashtext(?)) as locked`,
        [`${this.orm.config.get('schema')}.outbox_relay`],
        'all',
        tx,
      );
      if (!lock?.locked) return 0; // another replica's relay is at it
      // Plain SQL rather than OutboxRecord entities: hydrating and change-tracking 100 JSON
      // envelopes a pass took five times the CPU of these two queries (bench/events.ts).
      const rows = await connection.execute<{ position: string; envelope: EventEnvelope }[]>(
        `select "position", "envelope" from ${table} where "published_at" is null order by "position" limit ${BATCH}`,
        [],
        'all',
        tx,
      );
      const outcomes = await this.publishInOrder(rows.map((row) => row.envelope));
      // Whatever the transport confirmed is marked, even after a failure (see publishInOrder),
      // so it is not sent again; the first failure is retried on the next pass.
      const published = rows.filter((_, i) => outcomes[i]?.ok).map((row) => row.position);
      if (published.length) {
        await connection.execute(
          `update ${table} set "published_at" = ? where "position" in (${published.map(() => '?').join(', ')})`,
          [new Date(), ...published],
          'run',
          tx,
        );
        this.logger.debug({ count: published.length }, 'outbox published');
      }
      const failure = outcomes.find((outcome): outcome is Failed => !outcome.ok);
      if (failure) {
        this.logger.warn({ err: failure.error, published: published.length, pending: rows.length - published.length }, 'outbox relay could not publish; will retry on the next sweep');
        return 0;
      }
      return published.length;
    });
  }

  /**
   * Starts the publishes in outbox order, without waiting for each confirmation (a round trip
   * to the server apiece, which made the relay the slowest stage: bench/events.ts), then waits
   * for all of them. Ordering holds because every publish is started within one turn of the
   * event loop, before any I/O callback can run: on NATS they leave in order on one connection,
   * and if that connection drops, the server has stored a prefix of the batch (the client drops
   * the unsent rest when it reconnects), so the retry of the first unconfirmed event resends
   * the others in order, and those already stored are dropped by message id. A publish that
   * has failed by the time the next is due (a closed transport, a payload refused before
   * sending) stops the batch, so nothing after it goes out.
   *
   * What this gives up against one publish at a time: an event the server itself refuses
   * (e.g. over a size limit) no longer holds back the events started after it. They are stored
   * and marked; the refused one is retried, and logged, on every pass.
   */
  private async publishInOrder(events: EventEnvelope[]): Promise<PublishOutcome[]> {
    const started: Promise<PublishOutcome>[] = [];
    let failed = false;
    for (const event of events) {
      started.push(
        this.transport.publish(event).then(
          (): PublishOutcome => ({ ok: true }),
          (error: unknown): PublishOutcome => {
            failed = true;
            return { ok: false, error };
          },
        ),
      );
      // One microtask, never a macrotask: lets an immediate failure show, lets no I/O in.
      await Promise.resolve();
      if (failed) break;
    }
    // Events after a stop are simply not published yet (and not reported as failures).
    return Promise.all(started);
  }

  /**
   * Publishes again every row already published within the retention, oldest first. For the
   * in-process transport, whose stream died with the last process: events published but not
   * yet handled then would be lost, and consumers' inboxes make the rest no-ops. Returns how
   * many went out.
   */
  async republishRetained(): Promise<number> {
    const table = this.outboxTable;
    const connection = this.orm.em.fork().getConnection();
    let after = '0';
    let total = 0;
    for (;;) {
      const rows = await connection.execute<{ position: string; envelope: EventEnvelope }[]>(
        `select "position", "envelope" from ${table} where "published_at" is not null and "position" > ? order by "position" limit ${BATCH}`,
        [after],
      );
      if (!rows.length) break;
      const outcomes = await this.publishInOrder(rows.map((row) => row.envelope));
      const failure = outcomes.find((outcome): outcome is Failed => !outcome.ok);
      if (failure) throw failure.error;
      total += rows.length;
      after = rows.at(-1)!.position;
    }
    if (total) this.logger.info({ events: total }, 'republished retained outbox events for the in-process transport');
    return total;
  }

  /** The subgraph's outbox, schema-qualified for plain SQL. */
  private get outboxTable(): string {
    return `"${this.orm.config.get('schema')}"."outbox"`;
  }

  private async prune(): Promise<void> {
    this.lastPrune = Date.now();
    const deleted = await this.orm.em.fork().nativeDelete(OutboxRecord, { publishedAt: { $lt: new Date(Date.now() - RETENTION_MS) } });
    if (deleted) this.logger.info({ deleted }, 'pruned published outbox rows');
  }
}

type Failed = { ok: false; error: unknown };
type PublishOutcome = { ok: true } | Failed;
