import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { Logger } from '../log.js';
import { assertLiveSubject, type LiveBus } from './live.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Core NATS publish/subscribe on `<prefix><subject>` (prefix `live.` by default). */
export class NatsLiveBus implements LiveBus {
  readonly kind = 'NATS' as const;
  private readonly subscriptions = new Set<Subscription>();

  private constructor(
    private readonly nc: NatsConnection,
    private readonly prefix: string,
    private readonly logger: Logger,
  ) {}

  static async connect(options: { url: string; prefix?: string; logger: Logger }): Promise<NatsLiveBus> {
    const prefix = options.prefix ?? 'live.';
    if (!prefix.endsWith('.')) throw new Error(`prefix must end with '.', got '${prefix}'`);
    const nc = await connect({ servers: options.url, name: 'storyloom-live', maxReconnectAttempts: -1, noAsyncTraces: true });
    return new NatsLiveBus(nc, prefix, options.logger);
  }

  publish(subject: string, message: unknown): void {
    assertLiveSubject(subject);
    this.nc.publish(this.prefix + subject, encoder.encode(JSON.stringify(message)));
  }

  subscribe(subject: string, handler: (message: unknown) => void): () => void {
    assertLiveSubject(subject);
    const subscription = this.nc.subscribe(this.prefix + subject, {
      callback: (error, msg) => {
        if (error) return this.logger.warn({ err: error, subject }, 'live subscription failed');
        try {
          handler(JSON.parse(decoder.decode(msg.data)));
        } catch (handlerError) {
          this.logger.warn({ err: handlerError, subject }, 'live message not handled');
        }
      },
    });
    this.subscriptions.add(subscription);
    return () => {
      if (!this.subscriptions.delete(subscription)) return;
      subscription.unsubscribe();
    };
  }

  subscriptionCount(): number {
    return this.subscriptions.size;
  }

  /** Waits until the server has seen every subscription and publish so far (tests: no race with a publish from another connection). */
  async flush(): Promise<void> {
    await this.nc.flush();
  }

  async close(): Promise<void> {
    this.subscriptions.clear();
    await this.nc.drain().catch(() => this.nc.close());
  }
}
