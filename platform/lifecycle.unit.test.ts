import { describe, expect, it } from 'vitest';
import { Shutdown } from './lifecycle.js';

describe('Shutdown', () => {
  it('stops newest first, runs every step despite failures, and reports them all', async () => {
    const order: string[] = [];
    const shutdown = new Shutdown();
    shutdown.add('database', () => void order.push('database'));
    shutdown.add('server', () => {
      order.push('server');
      throw new Error('boom');
    });
    shutdown.add('consumers', async () => void order.push('consumers'));
    const closing = shutdown.close();
    await expect(closing).rejects.toThrow('stopping server failed');
    expect(order).toEqual(['consumers', 'server', 'database']);
    await expect(shutdown.close()).rejects.toBeInstanceOf(AggregateError); // same outcome, steps not rerun
    expect(order).toHaveLength(3);
  });
});
