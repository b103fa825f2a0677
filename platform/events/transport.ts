import type { EventEnvelope } from './envelope.js';

/**
 * The port every event transport implements: JetStream in production and in distributed mode,
 * the in-process transport in the all-in-one default. Both pass one contract suite
 * (transport.contract.ts), so code above this interface cannot tell them apart.
 */
export interface EventTransport {
  readonly kind: 'NATS' | 'IN_PROCESS';
  /**
   * Publishes one event on `events.<type>`. Publishing the same event id twice delivers it once
   * (JetStream message-id de-duplication; the in-process transport keeps the same window).
   * Resolves once the event is durably stored by the transport.
   */
  publish(event: EventEnvelope): Promise<void>;
  /**
   * Starts (or resumes) a durable consumer: events whose type matches one of `types`
   * (NATS-style wildcards on the type, e.g. `user.*`, `story.>`) are handed to `handler` in
   * stream order, one at a time. A durable name that existed before resumes after the last
   * acknowledged event. A handler that throws gets the event again, with backoff, up to
   * `maxDeliver` times; after that `onDeadLetter` is called and the consumer moves on.
   */
  consume(options: ConsumeOptions): Promise<Consumption>;
  /** Where each durable consumer stands, for operators (systemStatus). */
  consumerStatus(): Promise<ConsumerStatus[]>;
  /** Resolves once the transport has shown it can reach its server (readiness probes). */
  ping(): Promise<void>;
  /**
   * Every event of `types` the stream still holds, oldest first, up to the last one published
   * when called: what a replay rebuilds a read model from.
   */
  history(types: string[]): AsyncIterable<Delivery>;
  close(): Promise<void>;
}

export interface ConsumerStatus {
  /** The durable name. */
  name: string;
  /** Events matching the consumer that it has not taken yet. */
  pending: number;
  /** Events delivered but not yet acknowledged (being handled, or waiting out a backoff). */
  inFlight: number;
  /** Redeliveries so far (the server's count; the in-process transport's since start). */
  redelivered: number;
  /** When the consumer last acknowledged an event, if the transport knows. */
  lastActiveAt: Date | null;
}

export interface DeliveryInfo {
  /** 1 on first delivery. */
  deliveryCount: number;
  /** Position in the stream, increasing. */
  sequence: number;
}

export interface Delivery extends DeliveryInfo {
  event: EventEnvelope;
}

/**
 * How a batch went: the first `done` deliveries are handled (acknowledged); if that is fewer
 * than the batch, the next one failed with `error` and is redelivered after backoff, ahead of
 * the rest, which are offered again after it.
 */
export interface BatchResult {
  done: number;
  error?: unknown;
  /**
   * The failure is not the next event's fault (the database is unreachable, say): the batch
   * is retried with backoff without spending that event's attempts.
   */
  systemic?: boolean;
}

export interface ConsumeOptions {
  durable: string;
  types: string[];
  /** One event at a time; or `handleBatch`. */
  handler?: (event: EventEnvelope, info: DeliveryInfo) => Promise<void>;
  /**
   * Several events at once, in stream order: whatever is waiting, up to `maxBatch`. Lets a
   * consumer commit many events in one database transaction. Throwing counts as `{ done: 0 }`.
   */
  handleBatch?: (batch: Delivery[]) => Promise<BatchResult>;
  /** Most deliveries per handleBatch call. Default 1 (always 1 with `handler`). */
  maxBatch?: number;
  /** Total attempts, first included. Default 5. */
  maxDeliver?: number;
  /** Delay before the n-th redelivery (n starting at 1). Default: exponential from 100 ms to 30 s. */
  backoffMs?: (redelivery: number) => number;
  onDeadLetter?: (event: EventEnvelope, error: unknown) => Promise<void> | void;
}

export interface Consumption {
  /** Stops taking new events; resolves once the handler in flight (if any) has finished. */
  stop(): Promise<void>;
}

/** The batch form of either handler, so transports deal with one shape. */
export function batchHandlerOf(options: ConsumeOptions): { maxBatch: number; handle: (batch: Delivery[]) => Promise<BatchResult> } {
  const { handler, handleBatch } = options;
  if (handleBatch && !handler) {
    const maxBatch = options.maxBatch ?? 1;
    if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new Error(`maxBatch must be a positive integer, got ${maxBatch}`);
    return {
      maxBatch,
      handle: async (batch) => {
        try {
          const result = await handleBatch(batch);
          const done = Number.isInteger(result.done) ? Math.max(0, Math.min(batch.length, result.done)) : 0;
          return { done, error: result.error, systemic: result.systemic };
        } catch (error) {
          return { done: 0, error };
        }
      },
    };
  }
  if (handler && !handleBatch) {
    return {
      maxBatch: 1,
      handle: async ([delivery]) => {
        try {
          await handler(delivery!.event, { deliveryCount: delivery!.deliveryCount, sequence: delivery!.sequence });
          return { done: 1 };
        } catch (error) {
          return { done: 0, error };
        }
      },
    };
  }
  throw new Error('consume() needs exactly one of handler and handleBatch');
}

export function defaultBackoffMs(redelivery: number): number {
  return Math.min(30_000, 100 * 2 ** (redelivery - 1));
}
