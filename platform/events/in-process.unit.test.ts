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
    const seen: number[] = [];
    const consumption = await transport.consume({ durable: 'd', types: ['story.*'], handler: async (_e, info) => void seen.push(info.sequence) });
    await transport.publish(event);
    now = 500;
    await transport.publish(event);
    now = 1_600;
    await transport.publish(event);
    await expect.poll(() => seen, { timeout: 5_000, interval: 5 }).toEqual([1, 2]);
    await consumption.stop();
    await transport.close();
  });

  it('refuses to publish after close', async () => {
    const transport = new InProcessTransport();
    await transport.close();
    await expect(transport.publish(createEnvelope({ type: 'a.b', payload: {} }, { serviceName: 'test' }))).rejects.toThrow(/closed/);
  });
});
