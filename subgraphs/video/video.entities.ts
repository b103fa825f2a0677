import { EntitySchema } from '@mikro-orm/postgresql';
import { erasureCleanupEntity, type ErasureCleanup as ErasureCleanupRow } from '../../platform/erasure/cleanup.entity.js';
import type { AspectRatio, TaskHandle, VideoBrief, VideoProviderName } from './providers/provider.js';

export type VideoStatus = 'QUEUED' | 'RUNNING' | 'COMPLETED' | 'FAILED';
export type AttemptStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT';

/** What the video is made of, taken from the story when it was asked for: fallbacks and restarts make the same video. */
export type VideoSource = { prompt: string } & VideoBrief['story'];

/**
 * A video and its job. The row and its attempts are the job's memory: a worker that takes it
 * again after a crash polls the provider task the last attempt recorded, and completes it once.
 */
export interface VideoJob {
  id: string;
  userId: string;
  storyId: string;
  style: string | null;
  aspectRatio: AspectRatio;
  durationSeconds: number;
  /** The providers to try, in order: the preferred one first. */
  providers: VideoProviderName[];
  source: VideoSource;
  status: VideoStatus;
  progress: number;
  /** The provider of the attempt under way, or the one that made the video. */
  provider: VideoProviderName | null;
  error: string | null;
  videoKey: string | null;
  videoContentType: string | null;
  sizeBytes: number | null;
  /** Runs of the job: the fence against a second run of it. */
  runs: number;
  /** Until when the run under way holds the job (renewed while it works; on the database's clock). */
  leaseUntil: Date | null;
  /** Failures that were not a provider's (database, storage, another subgraph); the job fails after a few. */
  failures: number;
  /** When its message was put on the queue; null: not known to be (the sweeper sends it). */
  enqueuedAt: Date | null;
  correlationId: string | null;
  createdAt: Date;
  startedAt: Date | null;
  completedAt: Date | null;
}

export const VideoJob = new EntitySchema<VideoJob>({
  name: 'VideoJob',
  tableName: 'video_job',
  properties: {
    id: { type: 'uuid', primary: true },
    userId: { type: 'uuid', fieldName: 'user_id' },
    storyId: { type: 'uuid', fieldName: 'story_id' },
    style: { type: 'text', nullable: true },
    aspectRatio: { type: 'string', fieldName: 'aspect_ratio' },
    durationSeconds: { type: 'integer', fieldName: 'duration_seconds' },
    providers: { type: 'json' },
    source: { type: 'json' },
    status: { type: 'string' },
    progress: { type: 'double' },
    provider: { type: 'string', nullable: true },
    error: { type: 'text', nullable: true },
    videoKey: { type: 'string', nullable: true, fieldName: 'video_key' },
    videoContentType: { type: 'string', nullable: true, fieldName: 'video_content_type' },
    sizeBytes: { type: 'bigint', nullable: true, fieldName: 'size_bytes', runtimeType: 'number' },
    runs: { type: 'integer' },
    leaseUntil: { type: 'Date', nullable: true, fieldName: 'lease_until' },
    failures: { type: 'integer' },
    enqueuedAt: { type: 'Date', nullable: true, fieldName: 'enqueued_at' },
    correlationId: { type: 'string', nullable: true, fieldName: 'correlation_id' },
    createdAt: { type: 'Date', fieldName: 'created_at' },
    startedAt: { type: 'Date', nullable: true, fieldName: 'started_at' },
    completedAt: { type: 'Date', nullable: true, fieldName: 'completed_at' },
  },
});

/** One provider's try at a job: its task, how it went, when. */
export interface VideoAttempt {
  jobId: string;
  /** 0 for the first provider tried, then 1, 2…: the index in the job's `providers`. */
  seq: number;
  provider: VideoProviderName;
  status: AttemptStatus;
  /** The provider's task, stored before polling starts: a restarted worker polls it again. */
  task: TaskHandle | null;
  progress: number | null;
  /** Where the provider put the finished video (expires). */
  resultUrl: string | null;
  error: string | null;
  /** REFUSED, THROTTLED, UNAVAILABLE, TIMEOUT, INVALID_RESPONSE, AUTH, PROVIDER_FAILED, DISABLED. */
  errorCode: string | null;
  startedAt: Date;
  taskCreatedAt: Date | null;
  finishedAt: Date | null;
}

export const VideoAttempt = new EntitySchema<VideoAttempt>({
  name: 'VideoAttempt',
  tableName: 'video_attempt',
  properties: {
    jobId: { type: 'uuid', primary: true, fieldName: 'job_id' },
    seq: { type: 'integer', primary: true },
    provider: { type: 'string' },
    status: { type: 'string' },
    task: { type: 'json', nullable: true },
    progress: { type: 'double', nullable: true },
    resultUrl: { type: 'text', nullable: true, fieldName: 'result_url' },
    error: { type: 'text', nullable: true },
    errorCode: { type: 'string', nullable: true, fieldName: 'error_code' },
    startedAt: { type: 'Date', fieldName: 'started_at' },
    taskCreatedAt: { type: 'Date', nullable: true, fieldName: 'task_created_at' },
    finishedAt: { type: 'Date', nullable: true, fieldName: 'finished_at' },
  },
});

/** What each user's plan allows, projected from billing's subscription.* events. */
export interface VideoEntitlement {
  userId: string;
  tier: string;
  /** null: unlimited. */
  videosPerMonth: number | null;
  membershipVersion: number;
  asOf: Date;
}

export const VideoEntitlement = new EntitySchema<VideoEntitlement>({
  name: 'VideoEntitlement',
  tableName: 'video_entitlement',
  properties: {
    userId: { type: 'uuid', primary: true, fieldName: 'user_id' },
    tier: { type: 'string' },
    videosPerMonth: { type: 'integer', nullable: true, fieldName: 'videos_per_month' },
    membershipVersion: { type: 'integer', fieldName: 'membership_version' },
    asOf: { type: 'Date', fieldName: 'as_of' },
  },
});

/**
 * What an erasure could not do inside its transaction (platform/erasure): a stored video to
 * delete, or a provider's task to cancel (target: the task's id; task: its handle, as its attempt
 * stored it, null for a blob).
 */
export type ErasureCleanup = ErasureCleanupRow<'PROVIDER_TASK'> & { provider: VideoProviderName | null; task: TaskHandle | null };
export const ErasureCleanup = erasureCleanupEntity<ErasureCleanup>({ task: { type: 'json', nullable: true } });

export const videoEntities = [VideoJob, VideoAttempt, VideoEntitlement, ErasureCleanup];
