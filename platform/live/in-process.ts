import { assertLiveSubject, type LiveBus } from './live.js';

/** The all-in-one default: the same semantics as core NATS within one process (no persistence). */
export class InProcessLiveBus implements LiveBus {
  readonly kind = 'IN_PROCESS' as const;
  private readonly handlers = new Map<string, Set<(message: unknown) => void>>();

  publish(subject: string, message: unknown): void {
    assertLiveSubject(subject);
    // Serialised like the NATS bus does, so no subscriber shares (or mutates) the publisher's object.
    const wire = JSON.stringify(message);
    for (const handler of [...(this.handlers.get(subject) ?? [])]) {
      queueMicrotask(() => handler(JSON.parse(wire)));
    }
  }

  subscribe(subject: string, handler: (message: unknown) => void): () => void {
    assertLiveSubject(subject);
    const set = this.handlers.get(subject) ?? new Set();
    this.handlers.set(subject, set);
    // A wrapper per call: the same handler subscribed twice is two subscriptions.
    const entry = (message: unknown) => handler(message);
    set.add(entry);
    return () => {
      set.delete(entry);
      if (!set.size) this.handlers.delete(subject);
    };
  }

  subscriptionCount(): number {
    let count = 0;
    for (const set of this.handlers.values()) count += set.size;
    return count;
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {
    this.handlers.clear();
  }
}
