import type { EntityManager } from '@mikro-orm/postgresql';
import { VideoJob } from './video.entities.js';

/** The work queue of video jobs: a message per job, its id. */
export const VIDEO_QUEUE = 'video';

/** The live subject of a job: what `videoJobUpdated` follows. */
export const liveSubjectOf = (jobId: string) => `VideoJob.${jobId}`;

/** The job's message is on the queue: the worker's sweeper need not send it again. */
export async function markEnqueued(em: EntityManager, id: string): Promise<void> {
  await em.nativeUpdate(VideoJob, { id, enqueuedAt: null }, { enqueuedAt: new Date() });
}
