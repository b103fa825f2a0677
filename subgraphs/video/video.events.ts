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
