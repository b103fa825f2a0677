import type { Logger } from 'pino';
import { subjectMatches, type EventEnvelope } from './envelope.js';
import {
  batchHandlerOf,
  defaultBackoffMs,
  type BatchResult,
  type ConsumeOptions,
  type ConsumerStatus,
  type Consumption,
  type Delivery,
  type EventTransport,
} from './transport.js';

export interface InProcessTransportOptions {
  /** How long a published event id is remembered for de-duplication; JetStream's default is 2 minutes. */
  duplicateWindowMs?: number;
  logger?: Logger;
  /** Injected clock for the de-duplication window. */
  now?: () => number;
  /**
   * Most events kept (like a JetStream stream's max_msgs). Older ones go once every durable
   * consumer has passed them; a consumer created later starts at the oldest one kept.
   * Default 100,000.
   */
  maxEvents?: number;
}

/** The in-memory stream: events with sequence `first` onwards (earlier ones were trimmed). */
class Log {
  first = 1;
  readonly events: StoredEvent[] = [];
  get next(): number {
    return this.first + this.events.length;
  }
  at(sequence: number): StoredEvent | undefined {
    return this.events[sequence - this.first];
  }
  /** Drops the events up to `sequence`. */
  trimThrough(sequence: number): void {
    const count = Math.min(sequence - this.first + 1, this.events.length);
    if (count <= 0) return;
    this.events.splice(0, count);
    this.first += count;
  }
}

interface StoredEvent {
  sequence: number;
  event: EventEnvelope;
}

/** What a durable name remembers between consume() calls, like a JetStream consumer's state. */
interface DurableState {
  /** Every event up to this sequence is acknowledged, dead-lettered or not for this consumer. */
  lastDone: number;
  /** Failed deliveries of the first event not done, so a restart continues the count as JetStream does. */
  deliveriesOfNext: number;
  /** The types of the last consume(), for status. */
  types: string[];
  redelivered: number;
  inFlight: number;
  lastActiveAt: Date | null;
}

const DEFAULT_DUPLICATE_WINDOW_MS = 2 * 60_000;

/**
 * The all-in-one transport: an append-only in-memory log with JetStream's semantics (message-id
 * de-duplication, durable cursors, ordered one-at-a-time delivery, redelivery with backoff,
 * dead-lettering), so code above EventTransport behaves the same without a nats-server.
 * Nothing survives the process; that is what the outbox is for.
 */
export class InProcessTransport implements EventTransport {
  readonly kind = 'IN_PROCESS' as const;
  private readonly stream = new Log();
  private readonly publishedAt = new Map<string, number>();
  private readonly durables = new Map<string, DurableState>();
  private readonly running = new Map<string, DurableRunner>();
  private readonly duplicateWindowMs: number;
  private readonly now: () => number;
  private closed = false;

  constructor(private readonly options: InProcessTransportOptions = {}) {
    this.duplicateWindowMs = options.duplicateWindowMs ?? DEFAULT_DUPLICATE_WINDOW_MS;
    this.now = options.now ?? Date.now;
  }

  async publish(event: EventEnvelope): Promise<void> {
    if (this.closed) throw new Error('InProcessTransport is closed');
    const now = this.now();
    this.forgetIdsOlderThan(now - this.duplicateWindowMs);
    if (this.publishedAt.has(event.id)) return;
    this.publishedAt.set(event.id, now);
    // A JSON copy, as over the wire: consumers never share (or mutate) the publisher's objects.
    const copy = JSON.parse(JSON.stringify(event)) as EventEnvelope;
    this.stream.events.push({ sequence: this.stream.next, event: copy });
    this.trim();
    for (const runner of this.running.values()) runner.wake();
  }

  async consume(options: ConsumeOptions): Promise<Consumption> {
    if (this.closed) throw new Error('InProcessTransport is closed');
    // JetStream would share one durable's events among its consumers; nothing here needs that,
    // and two loops on one cursor would break ordering, so a second consume() is a bug.
    if (this.running.has(options.durable)) {
      throw new Error(`durable consumer ${options.durable} is already being consumed`);
    }
    let state = this.durables.get(options.durable);
    if (!state) {
      state = { lastDone: this.stream.first - 1, deliveriesOfNext: 0, types: options.types, redelivered: 0, inFlight: 0, lastActiveAt: null };
      this.durables.set(options.durable, state);
    }
    state.types = options.types;
    const runner = new DurableRunner(this.stream, state, options, this.options.logger);
    this.running.set(options.durable, runner);
    runner.start();
    return {
      stop: async () => {
        await runner.stop();
        if (this.running.get(options.durable) === runner) this.running.delete(options.durable);
      },
    };
  }

  async ping(): Promise<void> {}

  async consumerStatus(): Promise<ConsumerStatus[]> {
    return [...this.durables].map(([name, state]) => {
      let pending = 0;
      for (let sequence = state.lastDone + 1 + state.inFlight; sequence < this.stream.next; sequence++) {
        const stored = this.stream.at(sequence);
        if (stored && state.types.some((pattern) => subjectMatches(pattern, stored.event.type))) pending++;
      }
      return { name, pending, inFlight: state.inFlight, redelivered: state.redelivered, lastActiveAt: state.lastActiveAt };
    });
  }

  async *history(types: string[]): AsyncIterable<Delivery> {
    const last = this.stream.next - 1;
    for (let sequence = this.stream.first; sequence <= last; sequence++) {
      const stored = this.stream.at(sequence);
      if (stored && types.some((pattern) => subjectMatches(pattern, stored.event.type))) {
        yield { event: stored.event, sequence, deliveryCount: 1 };
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.running.values()].map((runner) => runner.stop()));
    this.running.clear();
  }

  /** Keeps at most maxEvents, never dropping an event some known durable has not passed. */
  private trim(): void {
    const excess = this.stream.events.length - (this.options.maxEvents ?? 100_000);
    if (excess <= 0) return;
    let slowest = this.stream.first - 1 + excess;
    for (const state of this.durables.values()) slowest = Math.min(slowest, state.lastDone);
    this.stream.trimThrough(slowest);
  }

  /** Events held in memory (for tests and metrics). */
  get retained(): number {
    return this.stream.events.length;
  }

  /** Map iteration follows insertion order, which is publish order, so expired ids are at the front. */
  private forgetIdsOlderThan(cutoff: number): void {
    for (const [id, at] of this.publishedAt) {
      if (at > cutoff) break;
      this.publishedAt.delete(id);
    }
  }
}

/** One active consumption of a durable: walks the stream from the durable's cursor. */
class DurableRunner {
  private stopped = false;
  private loop: Promise<void> = Promise.resolve();
  /** Set only while the loop waits: ends the wait early. */
  private onStop: (() => void) | null = null;
  private onPublish: (() => void) | null = null;
  private readonly maxDeliver: number;
  private readonly backoffMs: (redelivery: number) => number;
  private readonly handle: (batch: Delivery[]) => Promise<BatchResult>;
  private readonly maxBatch: number;

  constructor(
    private readonly stream: Log,
    private readonly state: DurableState,
    private readonly options: ConsumeOptions,
    private readonly logger: Logger | undefined,
  ) {
    this.maxDeliver = options.maxDeliver ?? 5;
    this.backoffMs = options.backoffMs ?? defaultBackoffMs;
    ({ handle: this.handle, maxBatch: this.maxBatch } = batchHandlerOf(options));
  }

  start(): void {
    // Started on a later macrotask so the first delivery never runs inside consume()'s caller.
    this.loop = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.run());
  }

  wake(): void {
    this.onPublish?.();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.onStop?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const batch = this.nextBatch();
      if (batch.length) {
        await this.deliver(batch);
      } else {
        // Checking for work and arming the wait happen in one synchronous step, so a publish
        // can never slip between them unnoticed.
        await this.pause(null);
      }
    }
  }

  /**
   * Up to maxBatch matching events after the cursor. Events of other types before the first
   * match are marked done, as a filtered JetStream consumer never sees them.
   */
  private nextBatch(): StoredEvent[] {
    const batch: StoredEvent[] = [];
    for (let sequence = this.state.lastDone + 1; sequence < this.stream.next && batch.length < this.maxBatch; sequence++) {
      const candidate = this.stream.at(sequence);
      if (candidate && this.options.types.some((pattern) => subjectMatches(pattern, candidate.event.type))) {
        batch.push(candidate);
      } else if (batch.length === 0) {
        this.markDone(sequence);
      }
    }
    return batch;
  }

  /** Hands the batch over until every event in it is done or dead-lettered, or the runner stops. */
  private async deliver(batch: StoredEvent[]): Promise<void> {
    let pending = batch;
    let outages = 0;
    while (pending.length && !this.stopped) {
      const deliveries = pending.map(({ sequence, event }, i) => ({
        event,
        sequence,
        deliveryCount: i === 0 ? this.state.deliveriesOfNext + 1 : 1,
      }));
      this.state.inFlight = pending.length;
      const { done, error, systemic } = await this.handle(deliveries);
      this.state.inFlight = 0;
      if (done > 0) this.markDone(pending[done - 1]!.sequence);
      pending = pending.slice(done);
      if (!pending.length) return;

      if (systemic) {
        // Not the event's fault (the database is down): wait and retry, spending no attempt.
        this.logger?.warn({ err: error, durable: this.options.durable }, 'event consumer cannot handle events now; will retry');
        await this.pause(this.backoffMs(++outages));
        continue;
      }
      outages = 0;
      const failed = pending[0]!;
      const attempts = ++this.state.deliveriesOfNext;
      if (attempts >= this.maxDeliver) {
        if (!(await this.deadLetter(failed.event, error))) return;
        this.markDone(failed.sequence);
        pending = pending.slice(1);
        continue;
      }
      this.logger?.warn({ err: error, eventId: failed.event.id, type: failed.event.type, deliveryCount: attempts }, 'event handler failed; will redeliver');
      await this.pause(this.backoffMs(attempts));
      this.state.redelivered++;
    }
  }

  /**
   * Records the dead letter, retrying with backoff until that works: an event is never dropped
   * without a trace. Returns false if the runner stopped first (the event stays undone).
   */
  private async deadLetter(event: EventEnvelope, error: unknown): Promise<boolean> {
    for (let attempt = 1; !this.stopped; attempt++) {
      try {
        await this.options.onDeadLetter?.(event, error);
        this.logger?.error({ err: error, eventId: event.id, type: event.type, durable: this.options.durable }, 'event dead-lettered after max deliveries');
        return true;
      } catch (deadLetterError) {
        this.logger?.error({ err: deadLetterError, eventId: event.id, type: event.type }, 'could not record a dead letter; will retry');
        await this.pause(this.backoffMs(attempt));
      }
    }
    return false;
  }

  private markDone(sequence: number): void {
    this.state.lastDone = sequence;
    this.state.deliveriesOfNext = 0;
    this.state.lastActiveAt = new Date();
  }
  /**
   * Waits until woken: by a publish or stop() when idle (ms null), or by the backoff timer or
   * stop() when pausing before a redelivery. A publish must not cut a backoff short.
   */
  private pause(ms: number | null): Promise<void> {
    // A wait begun after stop() (a backoff after a failure in flight at the time) ends at once.
    if (this.stopped) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = () => {
        clearTimeout(timer);
        this.onStop = null;
        this.onPublish = null;
        resolve();
      };
      this.onStop = finish;
      if (ms === null) {
        this.onPublish = finish;
      } else {
        // Unref'd so a pending redelivery never keeps the process alive on its own.
        timer = setTimeout(finish, ms);
        timer.unref();
      }
    });
  }
}
