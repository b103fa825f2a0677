/**
 * The video port: one interface, one adapter per file (`local.ts`, `runway.ts`, `luma.ts`,
 * `pika.ts`). Every provider works the same way: a task is created, then polled until it
 * succeeds or fails, then its video is downloaded (the provider's URLs expire, so the worker
 * copies the video into our storage). The handle of a task is plain JSON, stored on the job's
 * attempt before polling starts, so a worker restarted after a crash polls the same task again
 * instead of paying for a new one. An adapter never touches the database, never sleeps between
 * polls (the worker paces them by `pollIntervalMs`), and never retries across providers (the
 * worker falls back).
 */
import type { Readable } from 'node:stream';

export type VideoProviderName = 'runway' | 'pika' | 'luma' | 'local';

export const VIDEO_PROVIDER_NAMES: readonly VideoProviderName[] = ['runway', 'pika', 'luma', 'local'];

export type AspectRatio = '16:9' | '9:16' | '1:1';

/** What to make: everything any provider needs, built by the worker from the story and its analysis. */
export interface VideoBrief {
  jobId: string;
  /** The text prompt (prompt.ts builds it), at most PROMPT_MAX_CHARS. */
  prompt: string;
  /** Requested length; each provider rounds it to a length it offers. */
  durationSeconds: number;
  aspectRatio: AspectRatio;
  /** The client's style, e.g. "watercolor"; already part of `prompt`. */
  style: string | null;
  /** The story, for providers that compose the video themselves (local). */
  story: {
    title: string;
    authorName: string | null;
    summary: string | null;
    genre: string | null;
    characters: { name: string; description: string }[];
    emotions: { label: string; intensity: number }[];
  };
  /** The story's latest narration, to lay under the video (local uses it), or null. */
  narration: { url: string; contentType: string } | null;
}

/**
 * The length closest to `seconds` among `offered` (each adapter passes the lengths its model
 * makes); a tie goes to the longer one (narration runs long, not short).
 */
export function nearestDuration<D extends number>(seconds: number, offered: readonly D[]): D {
  return offered.reduce((best, d) => (Math.abs(d - seconds) < Math.abs(best - seconds) || (Math.abs(d - seconds) === Math.abs(best - seconds) && d > best) ? d : best));
}

/** Runway's text prompt limit, the smallest of the providers': every prompt fits all of them. */
export const PROMPT_MAX_CHARS = 1000;

/**
 * A provider's task as stored on the attempt: its id and whatever else polling it needs (fal.ai
 * answers with the URLs to poll). Plain JSON: it is persisted and read back after a restart.
 */
export interface TaskHandle {
  id: string;
  urls?: Record<string, string>;
}

export type TaskStatus =
  /** Waiting at the provider (queued, throttled). */
  | { state: 'QUEUED' }
  /** Being made; `progress` 0..1 when the provider tells. */
  | { state: 'RUNNING'; progress: number | null }
  /** Done: the video is at `videoUrl` (which expires). */
  | { state: 'SUCCEEDED'; videoUrl: string }
  /** The provider gave up: `message` is safe to show; `code` is the provider's own, if any. */
  | { state: 'FAILED'; message: string; code?: string };

export interface DownloadedVideo {
  body: Readable;
  /** e.g. video/mp4. */
  contentType: string;
}

export interface VideoProvider {
  readonly name: VideoProviderName;
  /** How long to wait between two polls of a task (Runway: no more often than every 5 s). */
  readonly pollIntervalMs: number;
  /** How long a task may take, from its creation, before the worker gives up on it and falls back. */
  readonly taskTimeoutMs: number;
  /** Starts a task. Throws VideoProviderError when the provider refuses or cannot be reached. */
  create(brief: VideoBrief, options: { signal: AbortSignal }): Promise<TaskHandle>;
  /**
   * Where a task stands. Throws VideoProviderError with reason UNAVAILABLE when the provider
   * cannot be asked right now (the worker asks again until the task's deadline), any other
   * reason when the task is lost for good (the worker falls back).
   */
  status(handle: TaskHandle, options: { signal: AbortSignal }): Promise<TaskStatus>;
  /** The finished video's bytes, as a stream. Throws VideoProviderError. */
  download(videoUrl: string, options: { signal: AbortSignal }): Promise<DownloadedVideo>;
  /**
   * Asks the provider to stop a task this job no longer wants (the worker gave up on it), so it
   * stops rendering and billing. Best effort: resolves when the provider accepted, or when the
   * task had already ended (finished, failed, or no longer known); throws VideoProviderError
   * otherwise (the caller logs and moves on). Accepted is not stopped: a provider may still
   * finish, and bill, a task it was asked to stop.
   */
  cancel?(handle: TaskHandle, options: { signal: AbortSignal }): Promise<void>;
  /** Releases what the provider holds (the local renderer's ffmpeg processes); called at shutdown. */
  close?(): Promise<void>;
}

/**
 * Why a provider call failed:
 * - REFUSED: the provider will not make this video (content policy, bad input); 4xx.
 * - THROTTLED: too many requests (429) after the SDK's own retries.
 * - UNAVAILABLE: the provider cannot be reached or answers 5xx; may pass.
 * - TIMEOUT: no answer within the call's deadline.
 * - INVALID_RESPONSE: an answer this adapter cannot read.
 * - AUTH: the key was refused (401/403): an operator's problem, not the author's.
 */
export type VideoFailureReason = 'REFUSED' | 'THROTTLED' | 'UNAVAILABLE' | 'TIMEOUT' | 'INVALID_RESPONSE' | 'AUTH';

/** A provider call that failed; `message` is safe to show to the author and never holds a key. */
export class VideoProviderError extends Error {
  constructor(
    readonly reason: VideoFailureReason,
    message: string,
  ) {
    super(message);
    this.name = 'VideoProviderError';
  }
}

/** Settings every adapter takes. */
export interface ProviderSettings {
  pollIntervalMs: number;
  taskTimeoutMs: number;
  /** Deadline of one HTTP call (create, status, the download's headers and body). */
  requestTimeoutMs: number;
  /** Retries of one HTTP call on 429/5xx/connection errors (the SDKs' maxRetries). */
  maxRetries: number;
}
