import { describe, expect, it } from 'vitest';
import { createEnvelope } from './envelope.js';
import { InProcessTransport } from './in-process.js';
import { transportContract } from './transport.contract.js';

transportContract('in-process', async () => new InProcessTransport());

describe('InProcessTransport', () => {
  it('forgets event ids after the duplicate window, as JetStream does', async () => {
    let now = 0;
    const transport = new InProcessTransport({ duplicateWindowMs: 1_000, now: () => now });
    const event = createEnvelope({ type: 'story.created', payload: {} }, { serviceName: 'test' });
    const sentinel = createEnvelope({ type: 'story.created', payload: { last: true } }, { serviceName: 'test' });
    const seen: string[] = [];
    const consumption = await transport.consume({ durable: 'd', types: ['story.*'], handler: async (e) => void seen.push(e.id) });
    await transport.publish(event);
    now = 500;
    await transport.publish(event); // within the window: dropped
    now = 1_600;
    await transport.publish(event); // the window has passed: a new message
    await transport.publish(sentinel);
    // Delivery is ordered, so once the sentinel is in, everything before it is too.
    await expect.poll(() => seen.at(-1), { timeout: 5_000, interval: 5 }).toBe(sentinel.id);
    expect(seen).toEqual([event.id, event.id, sentinel.id]);
    await consumption.stop();
    await transport.close();
  });

  it('refuses to publish after close', async () => {
    const transport = new InProcessTransport();
    await transport.close();
    await expect(transport.publish(createEnvelope({ type: 'a.b', payload: {} }, { serviceName: 'test' }))).rejects.toThrow(/closed/);
  });
});
