import { LockMode, type MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from '../log.js';
import type { EventEnvelope } from './envelope.js';
import { OutboxRecord } from './outbox.entity.js';
import type { EventTransport } from './transport.js';

const BATCH = 100;

/**
 * Moves committed outbox rows to the event transport. `notify()` right after a commit makes
 * publishing immediate; the sweep on an interval catches whatever a crash or a transport
 * outage left behind. Rows are claimed with FOR UPDATE SKIP LOCKED, so several relays (one per
 * replica) share the work without publishing a row twice at once; should a relay die after
 * publishing but before marking, the row is published again with the same event id, which
 * the transport de-duplicates.
 */
export class OutboxRelay {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = true;

  constructor(
    private readonly orm: MikroORM,
    private readonly transport: EventTransport,
    private readonly logger: Logger,
    private readonly sweepMs = 1000,
  ) {}

  start(): void {
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
    } catch (error) {
      this.logger.warn({ err: error }, 'outbox relay could not publish; will retry on the next sweep');
    }
  }

  /** Publishes one batch of unpublished events in order; returns how many were published. */
  async flush(): Promise<number> {
    return this.orm.em.fork().transactional(async (em) => {
      const rows = await em.find(
        OutboxRecord,
        { publishedAt: null },
        { orderBy: { position: 'asc' }, limit: BATCH, lockMode: LockMode.PESSIMISTIC_PARTIAL_WRITE },
      );
      const now = new Date();
      for (const row of rows) {
        await this.transport.publish(row.envelope as unknown as EventEnvelope);
        row.publishedAt = now;
      }
      if (rows.length) this.logger.debug({ count: rows.length }, 'outbox published');
      return rows.length;
    });
  }
}
