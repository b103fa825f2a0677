import { erasureStore, type CleanupWork } from '../../platform/erasure/store.js';
import { ErasureCleanup } from './narration.entities.js';

export { blob, jobBlobs } from '../../platform/erasure/store.js';

/**
 * Narration's side of the erasure (platform/erasure/store.ts): its lock per user is taken first
 * by the erasure and by every write that creates data for the user (samples, clones,
 * narrations), and the erasure records the files and cloned voices it leaves to the sweeper.
 */
export const { lockUser, lockLiveUser, beginErasure, recordCleanup } = erasureStore({ entity: ErasureCleanup, lockKey: (userId) => `narration.user:${userId}` });

export const providerVoice = (provider: string, providerVoiceId: string): CleanupWork<ErasureCleanup> => ({ kind: 'PROVIDER_VOICE', target: providerVoiceId, provider });
