/**
 * The Luma Dream Machine adapter of the video port, through the official SDK (`lumaai`), which
 * owns the retries of polls. `generations.video.create` is `POST /generations/video` in this SDK
 * (1.19.1; older ones posted to `/generations`); `generations.get` polls `GET /generations/{id}`;
 * `generations.delete` (`DELETE /generations/{id}`) is how a generation is given up.
 * Luma reports no progress while a generation is "dreaming". A create is retried here, not by
 * the SDK, and only when Luma answered that it did not take it (http.ts).
 */
import LumaAI from 'lumaai';
import { checkClientOptions } from '../../../platform/http/provider-http.js';
import { downloadVideo } from './download.js';
import { connectionFailure, errorDetail, httpFailure, invalidResponse, type Call, type CallContext } from './failure.js';
import { createWithRetries, fetchWithinDeadline, withCallSignal, type SdkAnswer } from './http.js';
import { nearestDuration, VideoProviderError, type ProviderSettings, type TaskStatus, type VideoProvider } from './provider.js';

export interface LumaProviderOptions extends ProviderSettings {
  apiKey: string;
  /** Including `/dream-machine/v1`; the SDK's default (api.lumalabs.ai) when absent. */
  baseUrl?: string;
  /** One of LUMA_MODELS, e.g. "ray-2". */
  model: string;
}

type LumaModel = LumaAI.Generations.VideoCreateParams['model'];

/** The video models of the SDK's VideoCreateParams. */
export const LUMA_MODELS: readonly LumaModel[] = ['ray-2', 'ray-flash-2'];

/** Ray 2 makes 5 s and 9 s clips (the SDK's `duration: '5s' | '9s'`). */
const DURATIONS = [5, 9] as const;

export function createLumaProvider(options: LumaProviderOptions): VideoProvider {
  const { apiKey, baseUrl, pollIntervalMs, taskTimeoutMs, requestTimeoutMs, maxRetries } = options;
  checkClientOptions('createLumaProvider', { apiKey, timeoutMs: requestTimeoutMs, maxRetries });
  const model = LUMA_MODELS.find((m) => m === options.model);
  if (!model) throw new RangeError(`createLumaProvider: model must be one of ${LUMA_MODELS.join(', ')}, got ${JSON.stringify(options.model)}`);
  // The SDK's Fetch type is node-fetch's; the global fetch is what it calls at run time on Node 20.
  const fetch = fetchWithinDeadline(requestTimeoutMs) as unknown as NonNullable<ConstructorParameters<typeof LumaAI>[0]>['fetch'];
  const client = new LumaAI({ authToken: apiKey, baseURL: baseUrl, maxRetries, timeout: requestTimeoutMs, fetch });
  const context = (call: Call): CallContext => ({ label: 'Luma', call, apiKey, timeoutMs: requestTimeoutMs, maxRetries });

  return {
    name: 'luma',
    pollIntervalMs,
    taskTimeoutMs,

    async create(brief, { signal }) {
      signal.throwIfAborted();
      const params = { model, prompt: brief.prompt, aspect_ratio: brief.aspectRatio, duration: `${nearestDuration(brief.durationSeconds, DURATIONS)}s` } as const;
      let tries = 1;
      try {
        // The SDK's own retries would send the create again after a timeout too: see createWithRetries.
        const generation = await createWithRetries(maxRetries, signal, answered, (attempt) => {
          tries = attempt;
          return withCallSignal(signal, (own) => client.generations.video.create(params, { signal: own, maxRetries: 0 }));
        });
        if (typeof generation?.id !== 'string' || !generation.id) throw invalidResponse(context('create'), 'a generation without an id');
        return { id: generation.id };
      } catch (error) {
        throw failure(error, { ...context('create'), attempts: tries }, signal);
      }
    },

    async status(handle, { signal }) {
      signal.throwIfAborted();
      let generation;
      try {
        generation = await withCallSignal(signal, (own) => client.generations.get(handle.id, { signal: own }));
      } catch (error) {
        throw failure(error, context('status'), signal);
      }
      return statusOf(generation, context('status'));
    },

    async cancel(handle, { signal }) {
      signal.throwIfAborted();
      try {
        // Luma has no cancel of its own: deleting the generation is the only way to tell it the
        // generation is not wanted, and afterwards it is unknown (404) to polls.
        await withCallSignal(signal, (own) => client.generations.delete(handle.id, { signal: own }));
      } catch (error) {
        // Already deleted, or never known: there is nothing left to stop.
        if (!signal.aborted && error instanceof LumaAI.NotFoundError) return;
        throw failure(error, context('cancel'), signal);
      }
    },

    download(videoUrl, { signal }) {
      return downloadVideo(videoUrl, { label: 'Luma', apiKey, timeoutMs: requestTimeoutMs, maxRetries }, signal);
    },
  };
}

function statusOf(generation: LumaAI.Generation, context: CallContext): TaskStatus {
  switch (generation?.state) {
    case 'queued':
      return { state: 'QUEUED' };
    case 'dreaming':
      return { state: 'RUNNING', progress: null };
    case 'completed': {
      const url = generation.assets?.video;
      if (typeof url !== 'string' || !url) throw invalidResponse(context, 'a completed generation without a video');
      return { state: 'SUCCEEDED', videoUrl: url };
    }
    case 'failed':
      return { state: 'FAILED', message: `Luma could not make the video: ${generation.failure_reason || 'no reason given'}` };
    default:
      throw invalidResponse(context, `a generation in an unknown state (${JSON.stringify((generation as { state?: unknown } | undefined)?.state)})`);
  }
}

/** The status of an answer the SDK threw as an error, for createWithRetries. */
function answered(error: unknown): SdkAnswer | null {
  if (!(error instanceof LumaAI.APIError) || typeof error.status !== 'number') return null;
  const retryAfter = error.headers?.['retry-after'];
  return { status: error.status, retryAfter: typeof retryAfter === 'string' ? retryAfter : null };
}

/** Maps what the SDK threw (after its retries) to what the port promises. */
function failure(error: unknown, context: CallContext, signal: AbortSignal): unknown {
  // Shutdown is nobody's fault: surface the abort itself.
  if (signal.aborted) return signal.reason;
  if (error instanceof VideoProviderError) return error;
  if (error instanceof LumaAI.APIConnectionTimeoutError) return connectionFailure(context, true, error.message);
  if (error instanceof LumaAI.APIConnectionError) return connectionFailure(context, false, error.cause instanceof Error ? error.cause.message : error.message);
  if (error instanceof LumaAI.APIError && typeof error.status === 'number') return httpFailure(context, error.status, errorDetail(error.error));
  return error;
}
