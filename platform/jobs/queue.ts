/**
 * Work queues for long jobs (narration, video): a job is a message; workers take them with
 * bounded concurrency and acknowledge each only when it is done. A worker that dies leaves its
 * job unacknowledged, and it is delivered again (to this or another process) once the
 * acknowledgement wait runs out: a job is never lost. Effects must be idempotent per job id
 * (the job's row says what was done), so a redelivered job is resumed or finished once.
 */
export interface JobQueue {
  readonly kind: 'NATS' | 'IN_PROCESS';
  /**
   * Queues a job; queued again under the same key (by default its id) while it waits, it is
   * dropped (JetStream: within the stream's duplicate window). Another key queues a second
   * message for the job: what a sweep does for a job whose message is gone.
   */
  enqueue(queue: string, job: { id: string; data?: unknown }, options?: { key?: string }): Promise<void>;
  /** Starts taking jobs of `queue`; at most `concurrency` run at once. */
  work(queue: string, options: WorkOptions, handler: (job: QueuedJob) => Promise<void>): Promise<Worker>;
  /** Jobs of `queue` waiting for a worker (not yet taken), for the job queue metrics. */
  depth(queue: string): Promise<number>;
  close(): Promise<void>;
}

export interface WorkOptions {
  concurrency: number;
  /**
   * How long a job may go without a sign of life before it is given to another worker. While
   * the handler runs, the queue renews it by itself; only a dead process lets it run out.
   */
  ackWaitMs: number;
  /** Deliveries before a job whose handler keeps throwing is dropped (logged). Default 5. */
  maxAttempts?: number;
  /** Delay before the n-th retry of a handler that threw. Default 1 s doubling, at most 30 s. */
  backoffMs?: (retry: number) => number;
}

export interface QueuedJob {
  id: string;
  data: unknown;
  /** 1 on the first delivery; more after a crash or a handler that threw. */
  attempt: number;
  /**
   * Aborted when the worker stops: the handler should stop soon and throw; the job is then
   * handed back at once (not counted as a failure) for another worker to resume.
   */
  signal: AbortSignal;
}

export interface Worker {
  /** Stops taking jobs, aborts the handlers' signals and waits for them: an interrupted job is handed back. */
  stop(): Promise<void>;
}

export const defaultJobBackoffMs = (retry: number) => Math.min(30_000, 1000 * 2 ** (retry - 1));

/** Queue names are subject tokens. */
export function assertQueueName(queue: string): void {
  if (!/^[A-Za-z0-9_-]+$/.test(queue)) throw new Error(`not a queue name: ${JSON.stringify(queue)}`);
}
