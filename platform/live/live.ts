/**
 * Live updates (job progress): not domain events. They travel on core NATS subjects
 * `live.<Type>.<id>` (DESIGN: not persisted, no replay); a subscriber that was not listening
 * misses them, which is why a subscription first fetches the current state.
 */
export interface LiveBus {
  readonly kind: 'NATS' | 'IN_PROCESS';
  /** Fire and forget. `subject` is without the bus's prefix: `NarrationJob.<id>`. */
  publish(subject: string, message: unknown): void;
  /** Calls `handler` for each message on `subject` until the returned function is called. */
  subscribe(subject: string, handler: (message: unknown) => void): () => void;
  /** Subscriptions open now: a gateway that leaks them shows it here. */
  subscriptionCount(): number;
  /** Resolves once what was published reached the server (NATS); readiness probes use it. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** Subject tokens are ids and type names: a dot or wildcard in one would reach other subjects. */
export function assertLiveSubject(subject: string): void {
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(subject)) throw new Error(`not a live subject: ${JSON.stringify(subject)}`);
}
