import { describe, expect, it, vi } from 'vitest';
import { PollLoop } from './poll-loop.js';

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('PollLoop', () => {
  it('runs at start, on each poll, and never twice at a time; a wake during a run runs it once more', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      let active = 0;
      let most = 0;
      let runs = 0;
      let release: () => void = () => {};
      const loop = new PollLoop(
        async () => {
          runs++;
          most = Math.max(most, ++active);
          await new Promise<void>((resolve) => (release = resolve));
          active--;
        },
        { everyMs: 1000, onError: () => {} },
      );
      loop.start();
      expect(runs).toBe(1);
      loop.wake();
      loop.wake();
      vi.advanceTimersByTime(1000);
      expect(runs).toBe(1);
      release();
      await tick();
      // The wakes during the first run make one more run, not three.
      expect(runs).toBe(2);
      release();
      await tick();
      expect(runs).toBe(2);
      vi.advanceTimersByTime(1000);
      expect(runs).toBe(3);
      const stopping = loop.stop();
      release();
      await stopping;
      vi.advanceTimersByTime(5000);
      loop.wake();
      expect(runs).toBe(3);
      expect(most).toBe(1);
      expect(loop.running).toBe(false);
    } finally {
      vi.useRealTimers();
    }
  });

  it('tells a failed run to onError and goes on', async () => {
    const errors: unknown[] = [];
    let runs = 0;
    const loop = new PollLoop(
      async () => {
        runs++;
        if (runs === 1) throw new Error('database away');
      },
      { everyMs: 60_000, onError: (error) => errors.push(error) },
    );
    loop.start();
    await tick();
    loop.wake();
    await tick();
    await loop.stop();
    expect(errors).toEqual([new Error('database away')]);
    expect(runs).toBe(2);
  });
});
