import type { EventEnvelope } from '../../platform/events/envelope.js';
import { erasureAsked as erasureAskedOf, erasureCompleted as erasureCompletedBy } from '../../platform/events/erasure.js';

/**
 * What video publishes (catalog: schema/events/catalog.json). The envelope's userId is the
 * job's owner. Progress is not a domain event: it travels on the live subject of the job
 * (`live.VideoJob.<id>`, core NATS, not persisted) as `video.generation.progress`.
 */
export const VIDEO_STARTED = 'video.generation.started';
export const VIDEO_PROGRESS = 'video.generation.progress';
export const VIDEO_COMPLETED = 'video.generation.completed';
export const VIDEO_FAILED = 'video.generation.failed';

export interface VideoStarted {
  jobId: string;
  storyId: string;
  /** The providers the job will try, in order. */
  providers: string[];
}

/** The live update of a job (not durable). */
export interface VideoProgress {
  type: typeof VIDEO_PROGRESS;
  jobId: string;
  status: string;
  progress: number;
  provider: string | null;
}

export interface AttemptSummary {
  provider: string;
  status: string;
  error: string | null;
}

export interface VideoCompleted {
  jobId: string;
  storyId: string;
  /** The provider that made the video. */
  provider: string;
  contentType: string;
  sizeBytes: number;
  attempts: AttemptSummary[];
}

export interface VideoFailed {
  jobId: string;
  storyId: string;
  error: string;
  attempts: AttemptSummary[];
}

/** Consumed. */
export const SUBSCRIPTION_EVENTS = 'subscription.*';
export const SUBSCRIPTION_CANCELLED = 'subscription.cancelled';
export interface SubscriptionChange {
  userId: string;
  /** Absent from events published before billing versioned memberships. */
  membershipVersion?: number;
  /** videosPerMonth is absent from events published before plans limited videos. */
  entitlements: { tier: string; videosPerMonth?: number | null };
}

export const USER_DELETED = 'user.deleted';

/**
 * This subgraph is a step of identity's user deletion saga (platform/events/erasure.ts): it
 * reports user.erasure.completed in the transaction that erased the user's data here.
 */
export { USER_ERASURE_COMPLETED, USER_ERASURE_REQUESTED, type UserErasureCompleted, type UserErasureRequested } from '../../platform/events/erasure.js';
const ERASURE_STEP = 'video';
/** Whose data to erase here, and as of when; null when the event asks nothing of this subgraph. */
export const erasureAsked = (event: EventEnvelope) => erasureAskedOf(event, ERASURE_STEP);
export const erasureCompleted = (userId: string) => erasureCompletedBy(userId, ERASURE_STEP);
