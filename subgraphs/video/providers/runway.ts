/**
 * The Runway adapter of the video port, through the official SDK (`@runwayml/sdk`), which owns
 * the X-Runway-Version header and the retries of polls: `POST /v1/text_to_video` starts a task,
 * `GET /v1/tasks/{id}` polls it, `DELETE /v1/tasks/{id}` cancels it. Runway asks to be polled no more than every 5 s. A create is
 * retried here, not by the SDK, and only when Runway answered that it did not take it (http.ts).
 */
import RunwayML from '@runwayml/sdk';
import { checkClientOptions } from '../../../platform/http/provider-http.js';
import { downloadVideo } from './download.js';
import { connectionFailure, errorDetail, httpFailure, invalidResponse, type Call, type CallContext } from './failure.js';
import { createWithRetries, fetchWithinDeadline, withCallSignal, type SdkAnswer } from './http.js';
import { nearestDuration, VideoProviderError, type AspectRatio, type ProviderSettings, type TaskStatus, type VideoProvider } from './provider.js';

export interface RunwayProviderOptions extends ProviderSettings {
  apiKey: string;
  /** Without `/v1`; the SDK's default (api.dev.runwayml.com) when absent. */
  baseUrl?: string;
  /** One of RUNWAY_MODELS, e.g. "gen4.5". */
  model: string;
}

type Ratio = '1280:720' | '720:1280';

interface RunwayModel {
  /** The lengths the model makes, in seconds. */
  durations: readonly number[];
  params(promptText: string, ratio: Ratio, duration: number): RunwayML.TextToVideoCreateParams;
}

/**
 * The text-to-video models whose lengths the SDK documents (4.20.1): gen4.5 takes any whole
 * number of seconds from 2 to 10, Veo 3.1 takes 4, 6 or 8. None of them makes square video; the
 * SDK's other models leave their lengths unstated, so this adapter does not guess at them.
 */
export const RUNWAY_MODELS: Readonly<Record<string, RunwayModel>> = {
  'gen4.5': {
    durations: [2, 3, 4, 5, 6, 7, 8, 9, 10],
    params: (promptText, ratio, duration) => ({ model: 'gen4.5', promptText, ratio, duration }),
  },
  'veo3.1': {
    durations: [4, 6, 8],
    params: (promptText, ratio, duration) => ({ model: 'veo3.1', promptText, ratio, duration: duration as 4 | 6 | 8 }),
  },
  'veo3.1_fast': {
    durations: [4, 6, 8],
    params: (promptText, ratio, duration) => ({ model: 'veo3.1_fast', promptText, ratio, duration: duration as 4 | 6 | 8 }),
  },
};

/** 720p in both orientations: the one size every model above offers. */
const RATIOS: Partial<Record<AspectRatio, Ratio>> = { '16:9': '1280:720', '9:16': '720:1280' };

export function createRunwayProvider(options: RunwayProviderOptions): VideoProvider {
  const { apiKey, baseUrl, model, pollIntervalMs, taskTimeoutMs, requestTimeoutMs, maxRetries } = options;
  checkClientOptions('createRunwayProvider', { apiKey, timeoutMs: requestTimeoutMs, maxRetries });
  const spec = RUNWAY_MODELS[model];
  if (!spec) throw new RangeError(`createRunwayProvider: model must be one of ${Object.keys(RUNWAY_MODELS).join(', ')}, got ${JSON.stringify(model)}`);
  const client = new RunwayML({ apiKey, baseURL: baseUrl, maxRetries, timeout: requestTimeoutMs, fetch: fetchWithinDeadline(requestTimeoutMs) });
  const context = (call: Call): CallContext => ({ label: 'Runway', call, apiKey, timeoutMs: requestTimeoutMs, maxRetries });

  return {
    name: 'runway',
    pollIntervalMs,
    taskTimeoutMs,

    async create(brief, { signal }) {
      signal.throwIfAborted();
      const ratio = RATIOS[brief.aspectRatio];
      if (!ratio) throw new VideoProviderError('REFUSED', `Runway ${model} makes no ${brief.aspectRatio} video (only 16:9 and 9:16)`);
      const params = spec.params(brief.prompt, ratio, nearestDuration(brief.durationSeconds, spec.durations));
      let tries = 1;
      try {
        // The SDK's own retries would send the create again after a timeout too: see createWithRetries.
        const task = await createWithRetries(maxRetries, signal, answered, (attempt) => {
          tries = attempt;
          return withCallSignal(signal, (own) => client.textToVideo.create(params, { signal: own, maxRetries: 0 }));
        });
        if (typeof task?.id !== 'string' || !task.id) throw invalidResponse(context('create'), 'a task without an id');
        return { id: task.id };
      } catch (error) {
        throw failure(error, { ...context('create'), attempts: tries }, signal);
      }
    },

    async status(handle, { signal }) {
      signal.throwIfAborted();
      let task;
      try {
        task = await withCallSignal(signal, (own) => client.tasks.retrieve(handle.id, { signal: own }));
      } catch (error) {
        throw failure(error, context('status'), signal);
      }
      return statusOf(task, context('status'));
    },

    async cancel(handle, { signal }) {
      signal.throwIfAborted();
      try {
        // One call for both (SDK 4.20.1): a pending, throttled or running task is cancelled, any
        // other is deleted, output included; it then reads as CANCELLED ("a cancelled or deleted
        // task"). The SDK retries it like a poll: sending it twice stops nothing twice.
        await withCallSignal(signal, (own) => client.tasks.delete(handle.id, { signal: own }));
      } catch (error) {
        // Runway no longer knows the task: there is nothing left to stop.
        if (!signal.aborted && error instanceof RunwayML.NotFoundError) return;
        throw failure(error, context('cancel'), signal);
      }
    },

    download(videoUrl, { signal }) {
      return downloadVideo(videoUrl, { label: 'Runway', apiKey, timeoutMs: requestTimeoutMs, maxRetries }, signal);
    },
  };
}

function statusOf(task: RunwayML.TaskRetrieveResponse, context: CallContext): TaskStatus {
  switch (task?.status) {
    case 'PENDING':
    case 'THROTTLED': // waiting for a slot in our organisation's concurrency limit
      return { state: 'QUEUED' };
    case 'RUNNING':
      return { state: 'RUNNING', progress: typeof task.progress === 'number' ? Math.min(1, Math.max(0, task.progress)) : null };
    case 'SUCCEEDED': {
      const url = Array.isArray(task.output) ? task.output[0] : undefined;
      if (typeof url !== 'string' || !url) throw invalidResponse(context, 'a succeeded task without an output URL');
      return { state: 'SUCCEEDED', videoUrl: url };
    }
    case 'FAILED':
      // Runway advises against showing `failure` without context.
      return { state: 'FAILED', message: `Runway could not make the video: ${task.failure || 'no reason given'}`, ...(task.failureCode ? { code: task.failureCode } : {}) };
    case 'CANCELLED':
      return { state: 'FAILED', message: 'Runway cancelled the task', code: 'CANCELLED' };
    default:
      throw invalidResponse(context, `a task in an unknown state (${JSON.stringify((task as { status?: unknown } | undefined)?.status)})`);
  }
}

/** The status of an answer the SDK threw as an error, for createWithRetries. */
function answered(error: unknown): SdkAnswer | null {
  if (!(error instanceof RunwayML.APIError) || typeof error.status !== 'number') return null;
  return { status: error.status, retryAfter: error.headers?.get('retry-after') ?? null };
}

/** Maps what the SDK threw (after its retries) to what the port promises. */
function failure(error: unknown, context: CallContext, signal: AbortSignal): unknown {
  // Shutdown is nobody's fault: surface the abort itself.
  if (signal.aborted) return signal.reason;
  if (error instanceof VideoProviderError) return error;
  if (error instanceof RunwayML.APIConnectionTimeoutError) return connectionFailure(context, true, error.message);
  if (error instanceof RunwayML.APIConnectionError) return connectionFailure(context, false, error.cause instanceof Error ? error.cause.message : error.message);
  if (error instanceof RunwayML.APIError && typeof error.status === 'number') return httpFailure(context, error.status, errorDetail(error.error));
  return error;
}
