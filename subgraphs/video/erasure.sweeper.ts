import type { MikroORM } from '@mikro-orm/postgresql';
import { tableOf } from '../../platform/db/tables.js';
import { PollLoop } from '../../platform/jobs/poll-loop.js';
import type { Logger } from '../../platform/log.js';
import type { BlobStorage } from '../../platform/storage/storage.js';
import type { VideoProvider, VideoProviderName } from './providers/provider.js';
import type { ErasureCleanup } from './video.entities.js';

export interface ErasureSweeperOptions {
  orm: MikroORM;
  storage: BlobStorage;
  /** Every provider this process can call, by name (the worker's). */
  providers: ReadonlyMap<VideoProviderName, VideoProvider>;
  logger: Logger;
  /** How often it looks for due work (default 2 s). */
  everyMs?: number;
}

/** Rows taken at a time; their deletions run side by side. */
const BATCH = 20;
/** How long a sweeper holds the rows it took: one that dies leaves them due again after this. */
const HOLD_MS = 5 * 60_000;
/** Waits after a failure: doubling from this, up to an hour. */
const RETRY_BASE_MS = 10_000;
const RETRY_MAX_MS = 3600_000;
/**
 * Tries at cancelling a task before giving up (about an hour and a half of waits): a running
 * task ends by itself within its provider's time limit, and a finished one's video with the
 * provider's retention. A file is never given up on: it holds the user's story made into a
 * film, and our store is ours to fix.
 */
const PROVIDER_MAX_ATTEMPTS = 10;

type Claimed = Pick<ErasureCleanup, 'id' | 'kind' | 'target' | 'provider' | 'task' | 'attempts'> & { userId: string };

/**
 * Does what erasures recorded in erasure_cleanup and could not do in their transaction: deletes
 * the stored videos, and asks providers to cancel the tasks the erased jobs made (best effort: a
 * provider may finish, and bill, a task it was asked to stop; Runway and Luma delete a finished
 * one). Every deletion and cancel is idempotent, so a row done twice (a sweeper that died after
 * the call, before the row went) does no harm.
 *
 * Replicas share the rows: each takes a batch with `for update skip locked` and pushes its due
 * time ahead while it works; a failure is tried again later, with a doubling wait.
 */
export class ErasureSweeper {
  private readonly log: Logger;
  private readonly loop: PollLoop;
  private stopping = false;
  /** One controller per provider call in flight, aborted by stop(): never a signal shared by calls. */
  private readonly calls = new Set<AbortController>();

  constructor(private readonly options: ErasureSweeperOptions) {
    this.log = options.logger.child({ worker: 'video-erasure-sweeper' });
    this.loop = new PollLoop(() => this.sweepDue().then(() => undefined), {
      everyMs: options.everyMs ?? 2_000,
      onError: (error) => this.log.warn({ err: error }, 'could not sweep erased videos; trying at the next poll'),
    });
  }

  start(): void {
    this.stopping = false;
    this.loop.start();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const call of this.calls) call.abort(new Error('the erasure sweeper is stopping'));
    await this.loop.stop();
  }

  /** Does everything due now; returns how many rows it finished (done, or given up on). */
  async sweepDue(): Promise<number> {
    let finished = 0;
    // A row taken has its due time pushed ahead, and a failed one waits: this ends when none is due.
    while (!this.stopping) {
      const batch = await this.claim();
      if (!batch.length) break;
      finished += await this.work(batch);
    }
    return finished;
  }

  private async claim(): Promise<Claimed[]> {
    const table = tableOf(this.options.orm.em, 'erasure_cleanup');
    return this.options.orm.em.fork().getConnection().execute<Claimed[]>(
      `update ${table} set "due_at" = clock_timestamp() + make_interval(secs => ?), "attempts" = "attempts" + 1
        where "id" in (select "id" from ${table} where "due_at" <= clock_timestamp() order by "due_at" limit ? for update skip locked)
        returning "id", "user_id" as "userId", "kind", "target", "provider", "task", "attempts"`,
      [HOLD_MS / 1000, BATCH],
    );
  }

  private async work(batch: Claimed[]): Promise<number> {
    const outcomes = await Promise.all(batch.map((row) => this.perform(row).then(() => null, (error: unknown) => error)));
    const done = batch.filter((_, i) => outcomes[i] === null);
    const failed = batch.map((row, i) => ({ row, error: outcomes[i] })).filter(({ error }) => error !== null);
    const givenUp = failed.filter(({ row }) => row.kind !== 'BLOB' && row.attempts >= PROVIDER_MAX_ATTEMPTS);
    for (const { row, error } of givenUp) {
      this.log.warn({ err: error, userId: row.userId, provider: row.provider, taskId: row.target, attempts: row.attempts }, 'gave up cancelling the task of an erased video; it ends at its provider by itself');
    }
    const em = this.options.orm.em.fork();
    const table = tableOf(em, 'erasure_cleanup');
    const finished = [...done, ...givenUp.map(({ row }) => row)];
    if (finished.length) await em.getConnection().execute(`delete from ${table} where "id" in (?)`, [finished.map((row) => row.id)]);
    for (const { row, error } of failed.filter((f) => !givenUp.includes(f))) {
      const waitMs = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (row.attempts - 1));
      await em.getConnection().execute(`update ${table} set "due_at" = clock_timestamp() + make_interval(secs => ?), "last_error" = ? where "id" = ?`, [
        waitMs / 1000,
        messageOf(error),
        row.id,
      ]);
      this.log.warn({ err: error, userId: row.userId, kind: row.kind, attempts: row.attempts, retryInMs: waitMs }, 'could not finish erasing an account\'s video; trying again later');
    }
    if (done.length) this.log.debug({ done: done.length }, 'erased videos of deleted accounts');
    return finished.length;
  }

  private async perform(row: Claimed): Promise<void> {
    if (row.kind === 'BLOB') return this.options.storage.delete(row.target);
    const provider = row.provider ? this.options.providers.get(row.provider) : undefined;
    // A provider without a cancel (or no longer configured here) lets its task run out on its own.
    if (!provider?.cancel || !row.task) return;
    const call = new AbortController();
    this.calls.add(call);
    try {
      await provider.cancel(row.task, { signal: call.signal });
      this.log.debug({ provider: provider.name, taskId: row.task.id }, 'cancelled the provider task of an erased video');
    } finally {
      this.calls.delete(call);
    }
  }
}

function messageOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).slice(0, 1000);
}
