import { tableOf } from '../../platform/db/tables.js';
import { erasureStepConsumer } from '../../platform/erasure/step.js';
import type { EventHandlerContext } from '../../platform/events/consumer.types.js';
import { beginErasure, blob, jobBlobs, providerVoice, recordCleanup } from './erasure.store.js';
import * as events from './narration.events.js';
import { storedKeysOf } from './narration.rules.js';

/**
 * An account is deleted: narration's step of the deletion saga, asked again by
 * user.erasure.requested if it did not report. Its voice samples, its voice and its narrations
 * (as their requester: a narration is its owner's reading of their own story, in their voice)
 * go in one transaction, open jobs with them: a worker's every write is guarded by the job's
 * row, so a run that picks one up finds nothing, and one under way stops at its next commit.
 * Stored files and the cloned voice at its provider cannot be deleted in a transaction: they are
 * recorded in erasure_cleanup in the same one, and the ErasureSweeper deletes them after the
 * commit (the files of open jobs once more later: a part or its audio stored by a run in flight
 * before its next guarded commit). From the start of the transaction (platform/erasure/step.ts), a
 * sample, clone or narration asked for with a token still valid is refused. Idempotent: asked
 * again, it finds nothing left and reports again.
 */
export const erasureConsumer = erasureStepConsumer({ name: 'narration', events, beginErasure, erase: eraseUser });

async function eraseUser(ctx: EventHandlerContext, userId: string): Promise<void> {
  const { em } = ctx;
  // Deleted with `returning`: a worker's commit that lands first is waited for and its keys seen.
  const run = <T>(sql: string) => em.getConnection().execute<T[]>(sql, [userId], 'all', em.getTransactionContext());
  const samples = await run<{ storage_key: string; uploaded_at: Date | null }>(`delete from ${tableOf(em, 'voice_sample')} where "user_id" = ? returning "storage_key", "uploaded_at"`);
  const voices = await run<{ provider: string | null; provider_voice_id: string | null }>(`delete from ${tableOf(em, 'voice')} where "user_id" = ? returning "provider", "provider_voice_id"`);
  const jobs = await run<{ id: string; status: string; parts_total: number | null; attempts: number; audio_key: string | null }>(
    `delete from ${tableOf(em, 'narration_job')} where "user_id" = ? returning "id", "status", "parts_total", "attempts", "audio_key"`,
  );
  await recordCleanup(em, userId, [
    // A sample never uploaded stored nothing (a PUT racing this finds its row gone and removes its own object).
    ...samples.filter((s) => s.uploaded_at).map((s) => blob(s.storage_key)),
    ...jobBlobs(jobs.map((job) => ({ status: job.status, keys: storedKeysOf({ id: job.id, partsTotal: job.parts_total, attempts: job.attempts, audioKey: job.audio_key }) }))),
    // A voice being cloned has no id yet: the clone, finding its row gone, records the voice it made.
    ...voices.filter((v) => v.provider && v.provider_voice_id).map((v) => providerVoice(v.provider!, v.provider_voice_id!)),
  ]);
  if (samples.length || voices.length || jobs.length) {
    ctx.log.info({ userId, samples: samples.length, voices: voices.length, narrations: jobs.length }, 'erased the voice and narrations of a deleted account');
  }
}
