/**
 * How the remote adapters turn an HTTP outcome into the port's VideoProviderError, once for all
 * three (STYLE 3). What a status means depends on the call: a 429 on create is THROTTLED, but on
 * a status poll it only means "ask again later", and the port reserves UNAVAILABLE for that
 * (any other reason makes the worker give the task up and pay another provider).
 */
import { attempts, redact } from '../../../platform/http/provider-http.js';
import { VideoProviderError } from './provider.js';

/** Which call failed: create a task, poll it, read its result (fal.ai), download the video, or cancel the task. */
export type Call = 'create' | 'status' | 'result' | 'download' | 'cancel';

export interface CallContext {
  /** The provider as authors read it, e.g. "Runway". */
  label: string;
  call: Call;
  /** Redacted from every message. */
  apiKey: string;
  timeoutMs: number;
  maxRetries: number;
  /** How many tries were made, when fewer than maxRetries + 1 (a create is not sent again after a timeout). */
  attempts?: number;
}

const triesOf = (context: CallContext) => attempts(context.attempts ?? context.maxRetries + 1);

/** The provider answered `status` (after the retries) with `detail` (its own error text, if any). */
export function httpFailure(context: CallContext, status: number, detail: string | null): VideoProviderError {
  const { label, call, apiKey } = context;
  const said = detail ? `: ${detail}` : '';
  const error = (reason: VideoProviderError['reason'], message: string) => new VideoProviderError(reason, redact(message, apiKey));
  if (call === 'download') {
    // Video links are pre-signed and carry no key: 403/404/410 mean the link expired or is wrong.
    if (status === 429 || status >= 500) return error('UNAVAILABLE', `${label}'s video link answered ${status}${said}`);
    return error('INVALID_RESPONSE', `${label}'s video link answered ${status}${said}: it may have expired`);
  }
  if (status === 401 || status === 403) return error('AUTH', `${label} refused the API key (${status})${said}: check the ${label} API key`);
  if (call !== 'create') {
    const asked = call === 'cancel' ? 'asked to cancel a task' : 'asked about a task';
    if (status === 404) return error('INVALID_RESPONSE', `${label} no longer knows this task (404)${said}`);
    if (status === 408 || status === 429 || status >= 500) return error('UNAVAILABLE', `${label} answered ${status} when ${asked}${said}`);
    return error('INVALID_RESPONSE', `${label} answered ${status} when ${asked}${said}`);
  }
  if (status === 429) return error('THROTTLED', `${label} is rate limiting us (429, ${triesOf(context)})${said}`);
  if (status === 408) return error('TIMEOUT', `${label} timed out (408)${said}`);
  if (status >= 500) return error('UNAVAILABLE', `${label} answered ${status} (${triesOf(context)})${said}`);
  // A 404 on create is a wrong base URL or model: nothing the author can change.
  if (status === 404) return error('INVALID_RESPONSE', `${label} does not know this endpoint (404)${said}: check its base URL and model`);
  return error('REFUSED', `${label} refused to make this video (${status})${said}`);
}

/** No answer at all: the connection failed, or the deadline of every attempt passed. */
export function connectionFailure(context: CallContext, timedOut: boolean, cause: string): VideoProviderError {
  const { label, call, apiKey, timeoutMs } = context;
  const tries = triesOf(context);
  // A poll that times out is asked again by the worker; a create or a download that times out is not.
  const reason = timedOut ? (call === 'create' || call === 'download' ? 'TIMEOUT' : 'UNAVAILABLE') : 'UNAVAILABLE';
  const message = timedOut ? `${label} did not answer within ${timeoutMs} ms (${tries})` : `Could not reach ${label} (${tries}): ${cause}`;
  return new VideoProviderError(reason, redact(message, apiKey));
}

/** An answer this adapter cannot read. */
export function invalidResponse(context: CallContext, what: string): VideoProviderError {
  return new VideoProviderError('INVALID_RESPONSE', redact(`${context.label} answered ${what}`, context.apiKey));
}

/** The error text in a provider's JSON error body: `{ error }` (Runway), `{ detail }` (Luma, fal.ai), `{ message }`. */
export function errorDetail(body: unknown): string | null {
  if (typeof body === 'string') return body.trim() ? body.trim().slice(0, 500) : null;
  if (typeof body !== 'object' || body === null) return null;
  const record = body as Record<string, unknown>;
  for (const key of ['error', 'detail', 'message']) {
    const value = record[key];
    if (typeof value === 'string' && value) return value.slice(0, 500);
    // FastAPI validation errors (fal.ai): `detail: [{ loc, msg, type }]`.
    if (Array.isArray(value)) {
      const messages = value.map((item) => (typeof item === 'object' && item !== null && typeof (item as { msg?: unknown }).msg === 'string' ? (item as { msg: string }).msg : null));
      const text = messages.filter((m): m is string => m !== null).join('; ');
      if (text) return text.slice(0, 500);
    }
    if (typeof value === 'object' && value !== null) {
      const nested = errorDetail(value);
      if (nested) return nested;
    }
  }
  return null;
}
