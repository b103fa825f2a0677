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

  it('keeps at most maxEvents, but never an event a known durable has not handled', async () => {
    const transport = new InProcessTransport({ maxEvents: 2 });
    const publish = (n: number) => transport.publish(createEnvelope({ type: 'story.created', payload: { n } }, { serviceName: 'test' }));
    const seen: number[] = [];
    const handler = async (e: { payload: unknown }) => void seen.push((e.payload as { n: number }).n);
    let consumption = await transport.consume({ durable: 'slow', types: ['story.*'], handler });
    await publish(1);
    await expect.poll(() => seen).toEqual([1]);
    await consumption.stop();
    for (const n of [2, 3, 4, 5]) await publish(n);
    // 'slow' has not seen 2..5, so they stay although that is more than two.
    expect(transport.retained).toBe(4);
    consumption = await transport.consume({ durable: 'slow', types: ['story.*'], handler });
    await expect.poll(() => seen).toEqual([1, 2, 3, 4, 5]);
    await publish(6);
    await expect.poll(() => seen).toEqual([1, 2, 3, 4, 5, 6]);
    expect(transport.retained).toBe(2);
    // A durable created now starts at the oldest event kept, as on a stream with max_msgs.
    const late: number[] = [];
    const other = await transport.consume({ durable: 'late', types: ['story.*'], handler: async (e) => void late.push((e.payload as { n: number }).n) });
    await expect.poll(() => late).toEqual([5, 6]);
    await Promise.all([consumption.stop(), other.stop()]);
    await transport.close();
  });

  it('refuses to publish after close', async () => {
    const transport = new InProcessTransport();
    await transport.close();
    await expect(transport.publish(createEnvelope({ type: 'a.b', payload: {} }, { serviceName: 'test' }))).rejects.toThrow(/closed/);
  });
});
