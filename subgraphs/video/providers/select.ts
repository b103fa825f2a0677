import { join } from 'node:path';
import type { Config } from '../../../platform/config.js';
import { createLocalVideoProvider } from './local.js';
import { createLumaProvider } from './luma.js';
import { createPikaProvider } from './pika.js';
import type { ProviderSettings, VideoProvider, VideoProviderName } from './provider.js';
import { createRunwayProvider } from './runway.js';

export interface VideoProviders {
  /** Providers new jobs try, in order of preference (VIDEO_PROVIDERS). */
  enabled: VideoProviderName[];
  /**
   * Every provider this process can call: the enabled ones, and any other with credentials, so
   * a job that started on a provider since removed from VIDEO_PROVIDERS still polls (and pays
   * for) its task instead of abandoning it.
   */
  all: Map<VideoProviderName, VideoProvider>;
}

/** The registry: every provider with its settings, built once per process. */
export function videoProvidersFor(config: Config): VideoProviders {
  const call = { requestTimeoutMs: config.VIDEO_REQUEST_TIMEOUT_MS, maxRetries: config.VIDEO_MAX_RETRIES };
  const build: Record<VideoProviderName, (() => VideoProvider) | null> = {
    runway: config.RUNWAY_API_KEY
      ? () => createRunwayProvider({ ...call, ...pace(config.RUNWAY_POLL_INTERVAL_MS, config.RUNWAY_TASK_TIMEOUT_MS), apiKey: config.RUNWAY_API_KEY!, baseUrl: config.RUNWAY_BASE_URL, model: config.RUNWAY_MODEL })
      : null,
    pika: config.FAL_KEY
      ? () => createPikaProvider({ ...call, ...pace(config.PIKA_POLL_INTERVAL_MS, config.PIKA_TASK_TIMEOUT_MS), apiKey: config.FAL_KEY!, queueUrl: config.FAL_QUEUE_URL, model: config.PIKA_MODEL })
      : null,
    luma: config.LUMA_API_KEY
      ? () => createLumaProvider({ ...call, ...pace(config.LUMA_POLL_INTERVAL_MS, config.LUMA_TASK_TIMEOUT_MS), apiKey: config.LUMA_API_KEY!, baseUrl: config.LUMA_BASE_URL, model: config.LUMA_MODEL })
      : null,
    local: () =>
      createLocalVideoProvider({
        workDir: join(config.DATA_DIR, 'video', 'local-renders'),
        ffmpegPath: config.FFMPEG_PATH,
        ...pace(config.LOCAL_VIDEO_POLL_INTERVAL_MS, config.LOCAL_VIDEO_TASK_TIMEOUT_MS),
      }),
  };
  const all = new Map<VideoProviderName, VideoProvider>();
  for (const name of Object.keys(build) as VideoProviderName[]) {
    const make = build[name];
    if (make) all.set(name, make());
  }
  return { enabled: [...config.VIDEO_PROVIDERS], all };
}

const pace = (pollIntervalMs: number, taskTimeoutMs: number): Pick<ProviderSettings, 'pollIntervalMs' | 'taskTimeoutMs'> => ({ pollIntervalMs, taskTimeoutMs });
