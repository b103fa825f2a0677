import { erasureStore, type CleanupWork } from '../../platform/erasure/store.js';
import type { TaskHandle, VideoProviderName } from './providers/provider.js';
import { ErasureCleanup } from './video.entities.js';

export { jobBlobs } from '../../platform/erasure/store.js';

/**
 * Video's side of the erasure (platform/erasure/store.ts): its lock per user, taken first by the
 * erasure and by generateVideo, is also the one that counts a user's videos against their plan;
 * the erasure records the videos and provider tasks it leaves to the sweeper.
 */
export const { lockLiveUser, beginErasure, recordCleanup } = erasureStore({ entity: ErasureCleanup, lockKey: (userId) => `video:${userId}` });

export const providerTask = (provider: VideoProviderName, task: TaskHandle): CleanupWork<ErasureCleanup> => ({ kind: 'PROVIDER_TASK', target: task.id, provider, task });
