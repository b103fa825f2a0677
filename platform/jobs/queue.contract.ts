import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { JobQueue, QueuedJob, Worker } from './queue.js';

/** What every JobQueue adapter must do; run by each adapter's test file with a factory of fresh queues. */
export function jobQueueContract(name: string, open: () => Promise<JobQueue>) {
  describe(`${name} job queue`, () => {
    const cleanups: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });
    const eventually = <T>(check: () => T | Promise<T>) => vi.waitFor(check, { timeout: 10_000, interval: 10 });
    const queueName = () => `q_${randomBytes(4).toString('hex')}`;
    async function fresh() {
      const queue = await open();
      cleanups.push(() => queue.close());
      return queue;
    }
    async function working(queue: JobQueue, name: string, options: Parameters<JobQueue['work']>[1], handler: (job: QueuedJob) => Promise<void>): Promise<Worker> {
      const worker = await queue.work(name, options, handler);
      cleanups.push(() => worker.stop());
      return worker;
    }

    it('tells how many jobs wait for a worker, before and after workers take some', async () => {
      const queue = await fresh();
      const name = queueName();
      expect(await queue.depth(name)).toBe(0);
      for (let n = 0; n < 3; n++) await queue.enqueue(name, { id: `job-${n}` });
      expect(await queue.depth(name)).toBe(3);
      const release: (() => void)[] = [];
      await working(queue, name, { concurrency: 2, ackWaitMs: 5000 }, () => new Promise<void>((resolve) => release.push(resolve)));
      await eventually(() => expect(release.length).toBe(2));
      await eventually(async () => expect(await queue.depth(name)).toBe(1));
      for (const done of release.splice(0)) done();
      await eventually(async () => expect(await queue.depth(name)).toBe(0));
      for (const done of release.splice(0)) done();
    });

    it('delivers each job once, with its data, never more at once than the concurrency', async () => {
      const queue = await fresh();
      const name = queueName();
      const seen: QueuedJob[] = [];
      let now = 0;
      let most = 0;
      const release: (() => void)[] = [];
      await working(queue, name, { concurrency: 2, ackWaitMs: 5000 }, async (job) => {
        seen.push(job);
        most = Math.max(most, ++now);
        await new Promise<void>((resolve) => release.push(resolve));
        now--;
      });
      for (let n = 0; n < 5; n++) await queue.enqueue(name, { id: `job-${n}`, data: { n } });
      for (let done = 0; done < 5; done++) {
        await eventually(() => expect(release.length).toBeGreaterThan(0));
        release.shift()!();
      }
      await eventually(() => expect(seen).toHaveLength(5));
      expect(seen.map((j) => j.id).sort()).toEqual(['job-0', 'job-1', 'job-2', 'job-3', 'job-4']);
      expect(seen.find((j) => j.id === 'job-3')).toMatchObject({ data: { n: 3 }, attempt: 1 });
      expect(most).toBe(2);
    });

    it('drops a second enqueue of a job id that is still waiting', async () => {
      const queue = await fresh();
      const name = queueName();
      await queue.enqueue(name, { id: 'same', data: 1 });
      await queue.enqueue(name, { id: 'same', data: 2 });
      const seen: QueuedJob[] = [];
      await working(queue, name, { concurrency: 1, ackWaitMs: 5000 }, async (job) => {
        seen.push(job);
      });
      await queue.enqueue(name, { id: 'marker' });
      await eventually(() => expect(seen.map((j) => j.id)).toContain('marker'));
      expect(seen.filter((j) => j.id === 'same')).toHaveLength(1);
    });

    it('queues a job again under another key, even after it was done', async () => {
      const queue = await fresh();
      const name = queueName();
      const seen: QueuedJob[] = [];
      await working(queue, name, { concurrency: 1, ackWaitMs: 5000 }, async (job) => {
        seen.push(job);
      });
      await queue.enqueue(name, { id: 'again', data: 1 });
      await eventually(() => expect(seen).toHaveLength(1));
      await queue.enqueue(name, { id: 'again', data: 2 }, { key: 'again:swept' });
      await eventually(() => expect(seen.map((j) => [j.id, j.data])).toEqual([['again', 1], ['again', 2]]));
    });

    it('retries a handler that throws, then drops the job after maxAttempts', async () => {
      const queue = await fresh();
      const name = queueName();
      const attempts: Record<string, number[]> = {};
      await working(queue, name, { concurrency: 1, ackWaitMs: 5000, maxAttempts: 3, backoffMs: () => 20 }, async (job) => {
        (attempts[job.id] ??= []).push(job.attempt);
        if (job.id === 'flaky' && job.attempt === 1) throw new Error('once');
        if (job.id === 'broken') throw new Error('always');
      });
      await queue.enqueue(name, { id: 'flaky' });
      await queue.enqueue(name, { id: 'broken' });
      await eventually(() => expect(attempts).toEqual({ flaky: [1, 2], broken: [1, 2, 3] }));
      await queue.enqueue(name, { id: 'after' });
      await eventually(() => expect(attempts.after).toEqual([1]));
      expect(attempts.broken).toEqual([1, 2, 3]);
    });

    it('hands an interrupted job back on stop(), for the next worker to take', async () => {
      const queue = await fresh();
      const name = queueName();
      const started: QueuedJob[] = [];
      const first = await queue.work(name, { concurrency: 1, ackWaitMs: 5000 }, async (job) => {
        started.push(job);
        await new Promise((_, reject) => job.signal.addEventListener('abort', () => reject(job.signal.reason), { once: true }));
      });
      await queue.enqueue(name, { id: 'long', data: 'x' });
      await eventually(() => expect(started).toHaveLength(1));
      await first.stop();
      const resumed: QueuedJob[] = [];
      await working(queue, name, { concurrency: 1, ackWaitMs: 5000 }, async (job) => {
        resumed.push(job);
      });
      await eventually(() => expect(resumed.map((j) => [j.id, j.data])).toEqual([['long', 'x']]));
    });
  });
}
