import { join } from 'node:path';
import type { Config } from '../../../platform/config.js';
import { createLocalVideoProvider } from './local.js';
import { createLumaProvider } from './luma.js';
import { createPikaProvider } from './pika.js';
import type { ProviderSettings, VideoProvider, VideoProviderName } from './provider.js';
import { createRunwayProvider } from './runway.js';

/** The registry: every enabled provider (VIDEO_PROVIDERS, in order of preference), built from its settings. */
export function videoProvidersFor(config: Config): Map<VideoProviderName, VideoProvider> {
  const call = { requestTimeoutMs: config.VIDEO_REQUEST_TIMEOUT_MS, maxRetries: config.VIDEO_MAX_RETRIES };
  const build: Record<VideoProviderName, () => VideoProvider> = {
    runway: () =>
      createRunwayProvider({ ...call, ...pace(config.RUNWAY_POLL_INTERVAL_MS, config.RUNWAY_TASK_TIMEOUT_MS), apiKey: config.RUNWAY_API_KEY!, baseUrl: config.RUNWAY_BASE_URL, model: config.RUNWAY_MODEL }),
    pika: () =>
      createPikaProvider({ ...call, ...pace(config.PIKA_POLL_INTERVAL_MS, config.PIKA_TASK_TIMEOUT_MS), apiKey: config.FAL_KEY!, queueUrl: config.FAL_QUEUE_URL, model: config.PIKA_MODEL }),
    luma: () =>
      createLumaProvider({ ...call, ...pace(config.LUMA_POLL_INTERVAL_MS, config.LUMA_TASK_TIMEOUT_MS), apiKey: config.LUMA_API_KEY!, baseUrl: config.LUMA_BASE_URL, model: config.LUMA_MODEL }),
    local: () =>
      createLocalVideoProvider({
        workDir: join(config.DATA_DIR, 'video', 'local-renders'),
        ffmpegPath: config.FFMPEG_PATH,
        ...pace(config.LOCAL_VIDEO_POLL_INTERVAL_MS, config.LOCAL_VIDEO_TASK_TIMEOUT_MS),
      }),
  };
  return new Map(config.VIDEO_PROVIDERS.map((name) => [name, build[name]()]));
}

const pace = (pollIntervalMs: number, taskTimeoutMs: number): Pick<ProviderSettings, 'pollIntervalMs' | 'taskTimeoutMs'> => ({ pollIntervalMs, taskTimeoutMs });
