import { randomBytes } from 'node:crypto';
import { vi } from 'vitest';
import type { EventEnvelope } from '../../platform/events/envelope.js';
import type { EventTransport } from '../../platform/events/transport.js';

/** A durable consumer that records what it receives, for asserting on published events. */
export async function captureEvents(transport: EventTransport, types: string[]) {
  const received: EventEnvelope<any>[] = [];
  const consumption = await transport.consume({
    durable: `test_${randomBytes(4).toString('hex')}`,
    types,
    handler: async (event) => {
      received.push(event);
    },
  });
  return {
    received,
    /** Waits until an event matching `predicate` has arrived, and returns it. */
    async waitFor(predicate: (event: EventEnvelope<any>) => boolean, timeout = 10_000) {
      return vi.waitFor(
        () => {
          const found = received.find(predicate);
          if (!found) throw new Error(`no matching event yet; received: ${received.map((e) => e.type).join(', ') || 'none'}`);
          return found;
        },
        { timeout, interval: 20 },
      );
    },
    stop: () => consumption.stop(),
  };
}
