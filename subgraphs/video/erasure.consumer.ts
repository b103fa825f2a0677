import { tableOf } from '../../platform/db/tables.js';
import { erasureStepConsumer } from '../../platform/erasure/step.js';
import type { EventHandlerContext } from '../../platform/events/consumer.types.js';
import { beginErasure, jobBlobs, providerTask, recordCleanup } from './erasure.store.js';
import type { TaskHandle, VideoProviderName } from './providers/provider.js';
import * as events from './video.events.js';
import { storedKeysOf } from './video.rules.js';

/**
 * An account is deleted: video's step of the deletion saga, asked again by
 * user.erasure.requested if it did not report. Its video jobs go, attempts with them, in one
 * transaction: a worker's every write is fenced by the job's row, so a run that picks one up
 * finds nothing, and one under way stops at its next renewal or write. The stored videos, and
 * the tasks the jobs made at providers, cannot be dealt with in a transaction: they are
 * recorded in erasure_cleanup in the same one, and after the commit the ErasureSweeper deletes
 * the files (those of open jobs once more later: a run in flight may store its video before its
 * fenced completion finds the job gone, and loses its lease within one lease period) and asks
 * the providers to cancel every task (a running one stops rendering and billing; Runway and Luma
 * delete a finished one, its video with it). From the start of the transaction
 * (platform/erasure/step.ts), a video asked for with a token still valid is refused. Idempotent:
 * asked again, it finds nothing left and reports again.
 *
 * The plan's projection (video_entitlement) stays: it holds the id and a tier, as billing's
 * records do, and billing's subscription.cancelled brings it to nothing.
 */
export const erasureConsumer = erasureStepConsumer({ name: 'video', events, beginErasure, erase: eraseUser });

async function eraseUser(ctx: EventHandlerContext, userId: string): Promise<void> {
  const { em } = ctx;
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
  await recordCleanup(em, userId, [
    ...jobBlobs(jobs.map((job) => ({ status: job.status, keys: storedKeysOf({ id: job.id, providers: job.providers, runs: job.runs, videoKey: job.video_key }) }))),
    // A task being created has no handle yet: the run, failing to store it, cancels it itself.
    ...attempts.filter((a) => a.task).map((a) => providerTask(a.provider, a.task!)),
  ]);
  if (jobs.length) ctx.log.info({ userId, videos: jobs.length, running: attempts.filter((a) => a.status === 'RUNNING').length }, 'erased the videos of a deleted account');
}
