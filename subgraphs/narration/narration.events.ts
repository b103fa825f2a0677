import type { EventEnvelope, NewEvent } from '../../platform/events/envelope.js';

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

export interface UserDeleted {
  userId: string;
}

/**
 * This subgraph is a step of identity's user deletion saga: it reports user.erasure.completed
 * in the transaction that erased the user's data here, and erases again when identity asks
 * (user.erasure.requested naming it) because no report came in time.
 */
export const USER_ERASURE_REQUESTED = 'user.erasure.requested';
export const USER_ERASURE_COMPLETED = 'user.erasure.completed';
const ERASURE_STEP = 'narration';

export interface UserErasureRequested {
  userId: string;
  services: string[];
  attempt: number;
  /** When the account was deleted (ISO-8601). */
  requestedAt: string;
}

export interface UserErasureCompleted {
  userId: string;
  service: string;
}

/**
 * Whose data to erase, and as of when (the deletion's time, so a late or repeated erasure has
 * the effect it would have had on time): user.deleted, or a request naming this subgraph.
 * Null for a request to other subgraphs.
 */
export function erasureAsked(event: EventEnvelope): { userId: string; at: Date } | null {
  if (event.type === USER_DELETED) return { userId: (event.payload as UserDeleted).userId, at: new Date(event.timestamp) };
  if (event.type !== USER_ERASURE_REQUESTED) return null;
  const { userId, services, requestedAt } = event.payload as UserErasureRequested;
  return services.includes(ERASURE_STEP) ? { userId, at: new Date(requestedAt) } : null;
}

/** The report the saga waits for. */
export function erasureCompleted(userId: string): NewEvent<UserErasureCompleted> {
  return { type: USER_ERASURE_COMPLETED, userId, payload: { userId, service: ERASURE_STEP } };
}
