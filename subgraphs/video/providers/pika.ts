/**
 * The Pika adapter of the video port. Pika has no public API of its own: its models are served by
 * fal.ai's queue. A request is submitted to `POST {queue}/{model}`, which answers with the URLs
 * to poll (`status_url`), to read the outcome from (`response_url`) and to cancel it (`cancel_url`,
 * a PUT); fal.ai asks clients to use those rather than build them, and they differ from the model
 * path (they drop its subpath:
 * `fal-ai/pika/requests/{id}`, not `fal-ai/pika/v2.2/text-to-video/requests/{id}`).
 *
 * Plain fetch, not `@fal-ai/client` (1.10.1): its `queue.status`/`queue.result` rebuild those URLs
 * from the endpoint id instead of taking the returned ones; every queue call carries a hard-coded
 * retry policy (3 retries from 1 s, which overrides the client's `retry` setting, so `maxRetries`
 * could not be honoured) that ignores Retry-After and sleeps without looking at the abort signal;
 * and it has no per-request deadline. Only the host could be redirected (a request middleware).
 * The input and output types are still the SDK's.
 */
import type { PikaV22TextToVideoInput, PikaV22TextToVideoOutput } from '@fal-ai/client/endpoints';
import { checkClientOptions } from '../../../platform/http/provider-http.js';
import { downloadVideo } from './download.js';
import { errorDetail, httpFailure, invalidResponse, type Call, type CallContext } from './failure.js';
import { fetchWithRetries, type Answer } from './http.js';
import { nearestDuration, type ProviderSettings, type TaskHandle, type TaskStatus, type VideoProvider } from './provider.js';

export interface PikaProviderOptions extends ProviderSettings {
  /** The fal.ai key (FAL_KEY), sent as `Authorization: Key <key>`. */
  apiKey: string;
  /** fal.ai's queue; https://queue.fal.run when absent. */
  queueUrl?: string;
  /** A fal.ai Pika text-to-video endpoint; fal-ai/pika/v2.2/text-to-video when absent. */
  model?: string;
}

export const FAL_QUEUE_URL = 'https://queue.fal.run';
export const PIKA_DEFAULT_MODEL = 'fal-ai/pika/v2.2/text-to-video';

/** Pika 2.2 makes 5 s and 10 s clips (the SDK's `duration: '5' | '10'`). */
const DURATIONS = [5, 10] as const;

export function createPikaProvider(options: PikaProviderOptions): VideoProvider {
  const { apiKey, pollIntervalMs, taskTimeoutMs, requestTimeoutMs, maxRetries } = options;
  checkClientOptions('createPikaProvider', { apiKey, timeoutMs: requestTimeoutMs, maxRetries });
  const queue = new URL(options.queueUrl ?? FAL_QUEUE_URL);
  const model = (options.model ?? PIKA_DEFAULT_MODEL).replace(/^\/+|\/+$/g, '');
  if (!/^[\w.-]+\/[\w.-]+(\/[\w.-]+)*$/.test(model)) throw new RangeError(`createPikaProvider: model must be a fal.ai endpoint id like ${PIKA_DEFAULT_MODEL}, got ${JSON.stringify(options.model)}`);
  const submitUrl = `${queue.href.replace(/\/+$/, '')}/${model}`;
  const context = (call: Call): CallContext => ({ label: 'Pika (fal.ai)', call, apiKey, timeoutMs: requestTimeoutMs, maxRetries });
  const headers = { authorization: `Key ${apiKey}`, accept: 'application/json' };

  /**
   * One queue call. Redirects are not followed: an answer from wherever fal.ai's queue pointed
   * (a status or a video URL) would be taken as fal.ai's, and the queue does not redirect.
   */
  const call = async (url: string, init: RequestInit, ctx: CallContext, signal: AbortSignal): Promise<Answer<unknown>> => {
    const answer = await fetchWithRetries(url, { ...init, redirect: 'manual', headers: { ...headers, ...init.headers } }, { ...ctx, signal }, async (response) =>
      parseJson(await response.text()),
    );
    const { status } = answer.response;
    if (status >= 300 && status < 400) throw invalidResponse(ctx, `a redirect (${status}) to ${originOf(answer.response.headers.get('location'), url)}; its answers are not trusted`);
    return answer;
  };

  /** A URL fal.ai handed us, checked before the key is sent to it. */
  const queueLink = (value: unknown, ctx: CallContext, name: string): string => {
    const url = parseUrl(value);
    if (!url) throw invalidResponse(ctx, `without a valid ${name}`);
    if (url.origin !== queue.origin) throw invalidResponse(ctx, `a ${name} on another host (${url.origin}); the key is only sent to ${queue.origin}`);
    return url.href;
  };

  return {
    name: 'pika',
    pollIntervalMs,
    taskTimeoutMs,

    async create(brief, { signal }) {
      signal.throwIfAborted();
      const ctx = context('create');
      const input: PikaV22TextToVideoInput = { prompt: brief.prompt, aspect_ratio: brief.aspectRatio, duration: `${nearestDuration(brief.durationSeconds, DURATIONS)}`, resolution: '720p' };
      const { response, body } = await call(submitUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(input) }, ctx, signal);
      if (!response.ok) throw httpFailure(ctx, response.status, errorDetail(body));
      const queued = record(body);
      if (typeof queued?.request_id !== 'string' || !queued.request_id) throw invalidResponse(ctx, 'a queued request without a request_id');
      const urls: Record<string, string> = {
        status_url: queueLink(queued.status_url, ctx, 'status_url'),
        response_url: queueLink(queued.response_url, ctx, 'response_url'),
      };
      // Kept for cancel(), only when the key may go there. A bad one is dropped, not refused: the
      // task exists now, and refusing would leave it unpolled.
      const cancel = parseUrl(queued.cancel_url);
      if (cancel?.origin === queue.origin) urls.cancel_url = cancel.href;
      return { id: queued.request_id, urls };
    },

    async status(handle, { signal }) {
      signal.throwIfAborted();
      const ctx = context('status');
      const { response, body } = await call(queueLink(handle.urls?.status_url, ctx, 'status_url in the task handle'), { method: 'GET' }, ctx, signal);
      if (!response.ok) throw httpFailure(ctx, response.status, errorDetail(body));
      const status = record(body)?.status;
      switch (status) {
        case 'IN_QUEUE':
          return { state: 'QUEUED' };
        case 'IN_PROGRESS':
          return { state: 'RUNNING', progress: null };
        case 'COMPLETED':
          return outcome(handle, signal);
        default:
          throw invalidResponse(ctx, `a request in an unknown status (${JSON.stringify(status)})`);
      }
    },

    async cancel(handle, { signal }) {
      signal.throwIfAborted();
      // No cancel_url: fal.ai gave none on our queue's host, so the key may not go anywhere to ask,
      // and fal.ai asks clients not to build queue URLs. Nothing to do: the request runs its course.
      const cancelUrl = handle.urls?.cancel_url;
      if (cancelUrl === undefined) return;
      const ctx = context('cancel');
      // Checked again: the handle was read back from the database.
      const { response, body } = await call(queueLink(cancelUrl, ctx, 'cancel_url in the task handle'), { method: 'PUT' }, ctx, signal);
      // 202 CANCELLATION_REQUESTED: taken out of the queue, or the runner was told to stop (the
      // model decides whether it does). 400 ALREADY_COMPLETED: done, nothing to stop. 404: fal.ai
      // no longer knows the request (its URL came from fal.ai, so not a wrong one).
      if (response.ok || response.status === 404) return;
      if (response.status === 400 && record(body)?.status === 'ALREADY_COMPLETED') return;
      throw httpFailure(ctx, response.status, errorDetail(body) ?? falStatus(body));
    },

    download(videoUrl, { signal }) {
      return downloadVideo(videoUrl, { label: 'Pika (fal.ai)', apiKey, timeoutMs: requestTimeoutMs, maxRetries }, signal);
    },
  };

  /**
   * A COMPLETED request may have failed: fal.ai keeps the model's answer, error or not, at the
   * response URL. Its model errors are 4xx/500 with a JSON `detail`; 502-504 and 429 are fal.ai's
   * own gateway (ask again), and so is any 5xx without that body (a proxy's "Internal Server
   * Error" page): taking it for the model's verdict would give up a video that may be done.
   */
  async function outcome(handle: TaskHandle, signal: AbortSignal): Promise<TaskStatus> {
    const ctx = context('result');
    const { response, body } = await call(queueLink(handle.urls?.response_url, ctx, 'response_url in the task handle'), { method: 'GET' }, ctx, signal);
    if (response.ok) {
      const url = (record(body) as Partial<PikaV22TextToVideoOutput> | null)?.video?.url;
      if (typeof url !== 'string' || !url) throw invalidResponse(ctx, 'a completed request without a video URL');
      return { state: 'SUCCEEDED', videoUrl: url };
    }
    const detail = errorDetail(body);
    const gateway = [401, 403, 404, 408, 429, 502, 503, 504].includes(response.status) || (response.status >= 500 && falDetail(body) === null);
    if (gateway) throw httpFailure(ctx, response.status, detail);
    const code = errorCode(body) ?? response.headers.get('x-fal-error-type');
    return { state: 'FAILED', message: `Pika (fal.ai) could not make the video: ${detail ?? `error ${response.status}`}`, ...(code ? { code } : {}) };
  }
}

/** The `status` of a queue answer (the cancel's answers carry no `detail`), or null. */
function falStatus(body: unknown): string | null {
  const status = record(body)?.status;
  return typeof status === 'string' ? status : null;
}

/** The text of fal.ai's own error body, `{ "detail": ... }` in JSON; null for anything else. */
function falDetail(body: unknown): string | null {
  const detail = record(body)?.detail;
  return detail === undefined ? null : errorDetail({ detail });
}

function parseUrl(value: unknown): URL | null {
  try {
    return typeof value === 'string' ? new URL(value) : null;
  } catch {
    return null;
  }
}

/** Where a redirect pointed, as an origin (never the path: it may hold anything). */
function originOf(location: string | null, base: string): string {
  try {
    return location ? new URL(location, base).origin : 'nowhere';
  } catch {
    return 'an invalid URL';
  }
}

/** fal.ai's machine-readable error: `error_type` (request errors) or the first `detail[].type` (model errors). */
function errorCode(body: unknown): string | null {
  const data = record(body);
  if (typeof data?.error_type === 'string') return data.error_type;
  const first: unknown = Array.isArray(data?.detail) ? data.detail[0] : null;
  const type = record(first)?.type;
  return typeof type === 'string' ? type : null;
}

function record(value: unknown): Record<string, unknown> | null {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}

/** The body as JSON, or as text when it is not (a proxy's error page). */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
