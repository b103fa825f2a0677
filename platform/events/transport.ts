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
  close(): Promise<void>;
}

export interface DeliveryInfo {
  /** 1 on first delivery. */
  deliveryCount: number;
  /** Position in the stream, increasing. */
  sequence: number;
}

export interface ConsumeOptions {
  durable: string;
  types: string[];
  handler: (event: EventEnvelope, info: DeliveryInfo) => Promise<void>;
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

export function defaultBackoffMs(redelivery: number): number {
  return Math.min(30_000, 100 * 2 ** (redelivery - 1));
}
