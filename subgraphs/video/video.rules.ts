import { userError } from '../../platform/errors.js';
import type { AspectRatio, VideoProviderName } from './providers/provider.js';
import type { VideoStatus } from './video.entities.js';

/**
 * Video's rules as plain functions (STYLE 2): which providers a job tries, what a plan allows,
 * how far along a job is. No I/O.
 */

export const isTerminal = (status: VideoStatus) => status === 'COMPLETED' || status === 'FAILED';

/** GraphQL's provider names are the settings' names in capitals. */
export const providerOfEnum = (value: string) => value.toLowerCase() as VideoProviderName;
export const enumOfProvider = (name: VideoProviderName) => name.toUpperCase();

export const ASPECT_RATIOS: Record<string, AspectRatio> = { LANDSCAPE: '16:9', PORTRAIT: '9:16', SQUARE: '1:1' };
export const aspectEnumOf = (ratio: AspectRatio) => Object.keys(ASPECT_RATIOS).find((key) => ASPECT_RATIOS[key] === ratio)!;

/**
 * The providers a job tries, in order: the enabled ones in the settings' order of preference,
 * the client's preferred one moved first. A preferred provider that is not enabled is refused
 * rather than ignored: the client asked for something this deployment does not offer.
 */
export function providerOrder(enabled: readonly VideoProviderName[], preferred: VideoProviderName | null): VideoProviderName[] {
  if (!preferred) return [...enabled];
  if (!enabled.includes(preferred)) {
    throw userError('PROVIDER_NOT_ENABLED', `${preferred} is not enabled here; choose one of: ${enabled.join(', ')}`, 'preferredProvider');
  }
  return [preferred, ...enabled.filter((name) => name !== preferred)];
}

export const STYLE_MAX_CHARS = 200;

/** A style is free text the prompt carries: trimmed, one line, at most 200 characters; empty means none. */
export function normalizeStyle(style: string | null | undefined): string | null {
  if (style === null || style === undefined) return null;
  const normalized = style.replace(/\s+/g, ' ').trim();
  if (!normalized) return null;
  if (normalized.length > STYLE_MAX_CHARS) throw userError('INVALID_INPUT', `A style is at most ${STYLE_MAX_CHARS} characters`, 'style');
  return normalized;
}

export interface VideoEntitlements {
  tier: string;
  /** null: unlimited. */
  videosPerMonth: number | null;
}

/**
 * Videos per month of each tier, as billing's plan table has them: what an entitlement event
 * from before plans limited videos (no videosPerMonth) means.
 */
const VIDEOS_PER_MONTH_OF_TIER: Record<string, number | null> = { FREE: 1, SILVER: 5, GOLD: 20, PLATINUM: null };

export function videosPerMonthOf(entitlements: { tier: string; videosPerMonth?: number | null }, cancelled = false): number | null {
  if (entitlements.videosPerMonth !== undefined) return entitlements.videosPerMonth;
  // A cancelled membership allows nothing, whatever its tier was.
  if (cancelled) return 0;
  // null is unlimited, not missing: an unknown tier allows nothing.
  return Object.hasOwn(VIDEOS_PER_MONTH_OF_TIER, entitlements.tier) ? VIDEOS_PER_MONTH_OF_TIER[entitlements.tier]! : 0;
}

/** Before billing's first event about a user arrives, they are on FREE like every new account. */
export const STARTING_ENTITLEMENTS: VideoEntitlements = { tier: 'FREE', videosPerMonth: VIDEOS_PER_MONTH_OF_TIER.FREE! };

/**
 * A new video is allowed while the videos completed this month and those under way are fewer
 * than the plan allows. Jobs under way count (or a burst of requests would pass the limit);
 * failed ones do not, as billing charges only completed videos, in the month they complete.
 */
export function assertVideoAllowed(entitlements: VideoEntitlements, videosThisMonth: number): void {
  const limit = entitlements.videosPerMonth;
  if (limit === null || videosThisMonth < limit) return;
  throw userError(
    'PLAN_LIMIT_REACHED',
    limit === 0 ? 'Your plan allows no videos' : `Your ${entitlements.tier} plan allows ${limit} ${limit === 1 ? 'video' : 'videos'} a month; upgrade to make more`,
  );
}

/** The UTC calendar month containing `at`, as billing counts periods. */
export function monthOf(at: Date): { start: Date; end: Date } {
  return { start: new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), 1)), end: new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth() + 1, 1)) };
}

/**
 * A job's progress, 0 to 1, from the attempt under way: a little once a provider has the task,
 * most of the way while it makes the video, the rest for copying it into storage. A fallback
 * starts the next provider from the beginning: progress is the attempt's, not a promise.
 */
export function jobProgress(stage: 'SUBMITTED' | 'MAKING' | 'DOWNLOADING' | 'DONE', taskProgress: number | null = null): number {
  switch (stage) {
    case 'SUBMITTED':
      return 0.05;
    case 'MAKING':
      return 0.05 + 0.85 * Math.min(1, Math.max(0, taskProgress ?? 0));
    case 'DOWNLOADING':
      return 0.9;
    case 'DONE':
      return 1;
  }
}

/** Where run `run` of a job stores the video its attempt `seq` made. */
export const videoKey = (jobId: string, seq: number, run: number) => `videos/${jobId}/video-${seq}-${run}.mp4`;

/**
 * Every key a job's runs may have stored, whatever became of them: one per attempt (provider)
 * and run, of which a completed job keeps one and a superseded run deletes its own, unless its
 * process died first. Erasing the job deletes them all; keys never written cost a delete of
 * nothing.
 */
export function storedKeysOf(job: { id: string; providers: readonly string[]; runs: number; videoKey: string | null }): string[] {
  const keys = new Set<string>();
  if (job.videoKey) keys.add(job.videoKey);
  for (let seq = 0; seq < job.providers.length; seq++) for (let run = 1; run <= job.runs; run++) keys.add(videoKey(job.id, seq, run));
  return [...keys];
}
