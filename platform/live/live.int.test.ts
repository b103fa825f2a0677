import { afterAll, describe, expect, inject, it, vi } from 'vitest';
import { createLogger } from '../log.js';
import { InProcessLiveBus } from './in-process.js';
import type { LiveBus } from './live.js';
import { NatsLiveBus } from './nats.js';

const logger = createLogger('silent');
const buses: LiveBus[] = [];
afterAll(async () => {
  for (const bus of buses) await bus.close();
});

const cases: [string, () => Promise<{ publisher: LiveBus; subscriber: LiveBus; settle: () => Promise<void> }>][] = [
  [
    'in-process',
    async () => {
      const bus = new InProcessLiveBus();
      buses.push(bus);
      return { publisher: bus, subscriber: bus, settle: async () => {} };
    },
  ],
  [
    'NATS',
    async () => {
      const prefix = `live${Date.now()}.`;
      const publisher = await NatsLiveBus.connect({ url: inject('natsUrl'), prefix, logger });
      const subscriber = await NatsLiveBus.connect({ url: inject('natsUrl'), prefix, logger });
      buses.push(publisher, subscriber);
      return { publisher, subscriber, settle: () => subscriber.flush() };
    },
  ],
];

describe.each(cases)('%s live bus', (_name, open) => {
  it('delivers to the subscribers of a subject only, until they unsubscribe', async () => {
    const { publisher, subscriber, settle } = await open();
    const a: unknown[] = [];
    const b: unknown[] = [];
    const offA = subscriber.subscribe('NarrationJob.1', (m) => a.push(m));
    const offB = subscriber.subscribe('NarrationJob.2', (m) => b.push(m));
    expect(subscriber.subscriptionCount()).toBe(2);
    await settle();
    publisher.publish('NarrationJob.1', { progress: 0.5 });
    await vi.waitFor(() => expect(a).toEqual([{ progress: 0.5 }]), { timeout: 5000 });
    offA();
    offA();
    expect(subscriber.subscriptionCount()).toBe(1);
    await settle();
    publisher.publish('NarrationJob.1', { progress: 1 });
    publisher.publish('NarrationJob.2', { done: true });
    await vi.waitFor(() => expect(b).toEqual([{ done: true }]), { timeout: 5000 });
    expect(a).toEqual([{ progress: 0.5 }]);
    offB();
    expect(subscriber.subscriptionCount()).toBe(0);
  });

  it('refuses subjects that would reach other subjects', async () => {
    const { publisher } = await open();
    expect(() => publisher.publish('NarrationJob.*', {})).toThrow(/not a live subject/);
    expect(() => publisher.subscribe('NarrationJob.>', () => {})).toThrow(/not a live subject/);
  });
});
