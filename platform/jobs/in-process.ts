import type { Logger } from '../log.js';
import { assertQueueName, defaultJobBackoffMs, type JobQueue, type QueuedJob, type WorkOptions, type Worker } from './queue.js';

interface Entry {
  id: string;
  /** What a second enqueue is recognised by while the entry waits. */
  key: string;
  data: unknown;
  attempt: number;
}

/**
 * The all-in-one default: the same contract within one process. Jobs queued before a restart
 * are gone with the process; whoever queues them re-queues what its rows say is unfinished.
 */
export class InProcessJobQueue implements JobQueue {
  readonly kind = 'IN_PROCESS' as const;
  private readonly waiting = new Map<string, Entry[]>();
  private readonly wake = new Map<string, () => void>();

  constructor(private readonly logger: Logger) {}

  async enqueue(queue: string, job: { id: string; data?: unknown }, options: { key?: string } = {}): Promise<void> {
    assertQueueName(queue);
    const list = this.waiting.get(queue) ?? [];
    this.waiting.set(queue, list);
    const key = options.key ?? job.id;
    if (list.some((entry) => entry.key === key)) return;
    list.push({ id: job.id, key, data: JSON.parse(JSON.stringify(job.data ?? null)), attempt: 0 });
    this.wake.get(queue)?.();
  }

  async depth(queue: string): Promise<number> {
    return this.waiting.get(queue)?.length ?? 0;
  }

  async work(queue: string, options: WorkOptions, handler: (job: QueuedJob) => Promise<void>): Promise<Worker> {
    assertQueueName(queue);
    const list = this.waiting.get(queue) ?? [];
    this.waiting.set(queue, list);
    const maxAttempts = options.maxAttempts ?? 5;
    const backoff = options.backoffMs ?? defaultJobBackoffMs;
    const running = new Set<Promise<void>>();
    const timers = new Set<NodeJS.Timeout>();
    let stopped = false;
    const stopping = new AbortController();
    const pump = () => {
      while (!stopped && running.size < options.concurrency && list.length) {
        const entry = list.shift()!;
        entry.attempt += 1;
        const run = handler({ id: entry.id, data: entry.data, attempt: entry.attempt, signal: stopping.signal })
          .catch((error: unknown) => {
            if (stopped) {
              // Interrupted by stop(): back at the head of the queue, not counted.
              entry.attempt -= 1;
              list.unshift(entry);
              return;
            }
            if (entry.attempt >= maxAttempts) {
              this.logger.error({ err: error, queue, jobId: entry.id, attempt: entry.attempt }, 'job failed on every attempt; dropped');
              return;
            }
            this.logger.warn({ err: error, queue, jobId: entry.id, attempt: entry.attempt }, 'job failed; retrying');
            const timer = setTimeout(() => {
              timers.delete(timer);
              list.unshift(entry);
              pump();
            }, backoff(entry.attempt));
            timers.add(timer);
          })
          .finally(() => {
            running.delete(run);
            pump();
          });
        running.add(run);
      }
    };
    this.wake.set(queue, pump);
    pump();
    return {
      stop: async () => {
        stopped = true;
        stopping.abort(new Error('the worker is stopping'));
        this.wake.delete(queue);
        for (const timer of timers) clearTimeout(timer);
        await Promise.allSettled([...running]);
      },
    };
  }

  async close(): Promise<void> {
    this.wake.clear();
  }
}
