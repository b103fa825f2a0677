import type { ConsumerDefinition, EventHandlerContext } from '../../platform/events/consumer.types.js';
import { tableOf } from '../../platform/db/tables.js';
import { blob, lockUser, markErased, providerTask, recordCleanup } from './erasure.store.js';
import type { TaskHandle, VideoProviderName } from './providers/provider.js';
import * as events from './video.events.js';
import { storedKeysOf } from './video.rules.js';

/**
 * How long after an erasure the files of the jobs it found open are deleted once more. A run in
 * flight may store its video after the erasure committed, before its fenced completion finds
 * the job gone (it then deletes the video itself, unless its process dies first); the run loses
 * its lease within one lease period, far less than this.
 */
export const LATE_SWEEP_MS = 15 * 60_000;

/**
 * An account is deleted: video's step of the deletion saga, asked again by
 * user.erasure.requested if it did not report. Its video jobs go, attempts with them, in one
 * transaction: a worker's every write is fenced by the job's row, so a run that picks one up
 * finds nothing, and one under way stops at its next renewal or write. The stored videos, and
 * the tasks the jobs made at providers, cannot be dealt with in a transaction: they are
 * recorded in erasure_cleanup in the same one, and after the commit the ErasureSweeper deletes
 * the files and asks the providers to cancel every task (a running one stops rendering and
 * billing; Runway and Luma delete a finished one, its video with it). Idempotent: asked again,
 * it finds nothing left and reports again.
 *
 * The plan's projection (video_entitlement) stays: it holds the id and a tier, as billing's
 * records do, and billing's subscription.cancelled brings it to nothing.
 */
export const erasureConsumer: ConsumerDefinition = {
  name: 'video',
  types: [events.USER_DELETED, events.USER_ERASURE_REQUESTED],
  async handle(event, ctx) {
    const erasure = events.erasureAsked(event);
    if (!erasure) return;
    await eraseUser(ctx, erasure.userId, erasure.at);
    ctx.emit(events.erasureCompleted(erasure.userId));
  },
};

async function eraseUser(ctx: EventHandlerContext, userId: string, at: Date): Promise<void> {
  const { em } = ctx;
  // After this, a video asked for with a token still valid is refused.
  await lockUser(em, userId);
  await markErased(em, userId, at);
  const run = <T>(sql: string) => em.getConnection().execute<T[]>(sql, [userId], 'all', em.getTransactionContext());
  const jobTable = tableOf(em, 'video_job');
  // The jobs first, as the worker locks them before their attempts: the two never wait on each other in a circle.
  await run(`select "id" from ${jobTable} where "user_id" = ? order by "id" for update`);
  const attempts = await run<{ provider: VideoProviderName; status: string; task: TaskHandle | null }>(
    `delete from ${tableOf(em, 'video_attempt')} where "job_id" in (select "id" from ${jobTable} where "user_id" = ?) returning "provider", "status", "task"`,
  );
  const jobs = await run<{ id: string; status: string; providers: string[]; runs: number; video_key: string | null }>(
    `delete from ${jobTable} where "user_id" = ? returning "id", "status", "providers", "runs", "video_key"`,
  );
  const keysOf = (job: (typeof jobs)[number]) => storedKeysOf({ id: job.id, providers: job.providers, runs: job.runs, videoKey: job.video_key });
  const late = new Date(Date.now() + LATE_SWEEP_MS);
  await recordCleanup(em, userId, [
    ...jobs.flatMap((job) => keysOf(job).map((key) => blob(key))),
    ...jobs.filter((job) => job.status === 'QUEUED' || job.status === 'RUNNING').flatMap((job) => keysOf(job).map((key) => blob(key, late))),
    // A task being created has no handle yet: the run, failing to store it, cancels it itself.
    ...attempts.filter((a) => a.task).map((a) => providerTask(a.provider, a.task!)),
  ]);
  if (jobs.length) ctx.log.info({ userId, videos: jobs.length, running: attempts.filter((a) => a.status === 'RUNNING').length }, 'erased the videos of a deleted account');
}
