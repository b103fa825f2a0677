import type { EntityManager } from '@mikro-orm/postgresql';
import { VideoJob } from './video.entities.js';

/** The work queue of video jobs: a message per job, its id. */
export const VIDEO_QUEUE = 'video';

/** The live subject of a job: what `videoJobUpdated` follows. */
export const liveSubjectOf = (jobId: string) => `VideoJob.${jobId}`;

/**
 * The messages of these jobs are on the queue: the worker's sweeper need not send them again.
 * One statement however many; a job already marked keeps its first time.
 */
export async function markEnqueued(em: EntityManager, ids: string | readonly string[]): Promise<void> {
  const list = typeof ids === 'string' ? [ids] : [...ids];
  if (!list.length) return;
  await em.nativeUpdate(VideoJob, { id: { $in: list }, enqueuedAt: null }, { enqueuedAt: new Date() });
}
