import type { EventEnvelope } from '../../platform/events/envelope.js';
import { erasureAsked as erasureAskedOf, erasureCompleted as erasureCompletedBy } from '../../platform/events/erasure.js';

/**
 * What narration publishes (catalog: schema/events/catalog.json). The envelope's userId is the
 * voice's or the job's owner.
 */
export const VOICE_CLONED = 'voice.cloned';
export const NARRATION_STARTED = 'narration.generation.started';
export const NARRATION_COMPLETED = 'narration.generation.completed';
export const NARRATION_FAILED = 'narration.generation.failed';

export interface VoiceCloned {
  voiceId: string;
  provider: string;
  samples: number;
}

export interface NarrationStarted {
  jobId: string;
  storyId: string;
  voice: 'CLONED' | 'STOCK';
}

export interface NarrationCompleted {
  jobId: string;
  storyId: string;
  durationMs: number | null;
  contentType: string;
}

export interface NarrationFailed {
  jobId: string;
  storyId: string;
  error: string;
}

/** Consumed. */
export const USER_DELETED = 'user.deleted';

/**
 * This subgraph is a step of identity's user deletion saga (platform/events/erasure.ts): it
 * reports user.erasure.completed in the transaction that erased the user's data here.
 */
export { USER_ERASURE_COMPLETED, USER_ERASURE_REQUESTED, type UserErasureCompleted, type UserErasureRequested } from '../../platform/events/erasure.js';
const ERASURE_STEP = 'narration';
/** Whose data to erase here, and as of when; null when the event asks nothing of this subgraph. */
export const erasureAsked = (event: EventEnvelope) => erasureAskedOf(event, ERASURE_STEP);
export const erasureCompleted = (userId: string) => erasureCompletedBy(userId, ERASURE_STEP);
