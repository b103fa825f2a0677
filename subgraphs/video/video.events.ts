import type { EventEnvelope, NewEvent } from '../../platform/events/envelope.js';

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
const ERASURE_STEP = 'video';

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
