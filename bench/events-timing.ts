/** Timestamps for the events bench (bench/events.ts), taken around the production relay and transport. */
import { performance } from 'node:perf_hooks';
import type { MikroORM } from '@mikro-orm/postgresql';
import type { EventEnvelope } from '../platform/events/envelope.js';
import { OutboxRelay } from '../platform/events/relay.js';
import type { ConsumeOptions, Delivery, EventTransport } from '../platform/events/transport.js';
import type { Logger } from '../platform/log.js';

/** What one phase (warm-up or measured) records; the transport wrapper writes into it. */
export class Phase {
  readonly committedAt = new Map<string, number>();
  readonly handledAt = new Map<string, number>();
  firstCommit = Infinity;
  published = 0;
  publishMs = 0;
  flushes = 0;
  flushRows = 0;
  flushMs = 0;
  batches = 0;
  batchEvents = 0;
  batchMs = 0;
}

/**
 * The transport as the relay and the consumer see it, plus timestamps. "Handled" is taken when
 * the consumer's handleBatch returns, i.e. after its transaction (inbox rows + counter upserts)
 * has committed and before the transport acknowledges: that is when the effect is visible to a
 * reader, which is what the latency means. A stamp inside the handler would leave out the rest
 * of the batch and the commit, flattering batches; the ack after it is not the reader's concern.
 */
export class TimedTransport implements EventTransport {
  readonly kind: EventTransport['kind'];
  phase = new Phase();

  constructor(private readonly inner: EventTransport) {
    this.kind = inner.kind;
  }

  async publish(event: EventEnvelope): Promise<void> {
    const start = performance.now();
    await this.inner.publish(event);
    this.phase.publishMs += performance.now() - start;
    this.phase.published++;
  }

  consume(options: ConsumeOptions) {
    const handleBatch = options.handleBatch;
    if (!handleBatch) throw new Error('the bench expects EventConsumer, which consumes in batches');
    return this.inner.consume({
      ...options,
      handleBatch: async (batch: Delivery[]) => {
        const start = performance.now();
        const result = await handleBatch(batch);
        const end = performance.now();
        const phase = this.phase;
        for (const { event } of batch.slice(0, result.done)) if (!phase.handledAt.has(event.id)) phase.handledAt.set(event.id, end);
        phase.batches++;
        phase.batchEvents += result.done;
        phase.batchMs += end - start;
        return result;
      },
    });
  }

  ping() {
    return this.inner.ping();
  }

  consumerStatus() {
    return this.inner.consumerStatus();
  }
  history(types: string[]) {
    return this.inner.history(types);
  }
  close() {
    return this.inner.close();
  }
}

/** Times each relay pass (a transaction: lock, select, publishes, mark). */
export class TimedRelay extends OutboxRelay {
  constructor(
    orm: MikroORM,
    private readonly timed: TimedTransport,
    logger: Logger,
  ) {
    super(orm, timed, logger);
  }

  override async flush(): Promise<number> {
    const start = performance.now();
    const rows = await super.flush();
    const phase = this.timed.phase;
    phase.flushes++;
    phase.flushRows += rows;
    phase.flushMs += performance.now() - start;
    return rows;
  }
}
