import type { MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from '../log.js';
import type { EventEnvelope } from './envelope.js';
import { OutboxRecord } from './outbox.entity.js';
import type { EventTransport } from './transport.js';

const BATCH = 100;
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
    return this.orm.em.fork().transactional(async (em) => {
      const connection = em.getConnection();
      const [lock] = await connection.execute<{ locked: boolean }[]>(
        `select pg_try_advisory_xact_lock(hashtext(?)) as locked`,
        [`${this.orm.config.get('schema')}.outbox_relay`],
        'all',
        em.getTransactionContext(),
      );
      if (!lock?.locked) return 0; // another replica's relay is at it
      const rows = await em.find(OutboxRecord, { publishedAt: null }, { orderBy: { position: 'asc' }, limit: BATCH });
      // One at a time: if a publish fails, nothing after it has gone out, so the retry keeps
      // the order. What did go out is marked, so it is not sent again.
      const now = new Date();
      let failure: unknown = null;
      for (const row of rows) {
        try {
          await this.transport.publish(row.envelope as unknown as EventEnvelope);
        } catch (error) {
          failure = error;
          break;
        }
        row.publishedAt = now;
      }
      const published = rows.filter((row) => row.publishedAt).length;
      if (published) this.logger.debug({ count: published }, 'outbox published');
      if (failure) {
        this.logger.warn({ err: failure, published, pending: rows.length - published }, 'outbox relay could not publish; will retry on the next sweep');
        return 0;
      }
      return published;
    });
  }

  private async prune(): Promise<void> {
    this.lastPrune = Date.now();
    const deleted = await this.orm.em.fork().nativeDelete(OutboxRecord, { publishedAt: { $lt: new Date(Date.now() - RETENTION_MS) } });
    if (deleted) this.logger.info({ deleted }, 'pruned published outbox rows');
  }
}
