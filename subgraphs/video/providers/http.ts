/**
 * HTTP plumbing the remote video adapters share: a fetch for the official SDKs whose deadline
 * covers the body, a retrying fetch for the calls no SDK makes (fal.ai's queue, downloads), and
 * the one rule for sending a create again (createNotTaken), which both follow.
 */
import { backoffMs, retryAfterMs, sleep, untilAborted } from '../../../platform/http/provider-http.js';
import { connectionFailure, type CallContext } from './failure.js';

/**
 * A fetch for the Stainless SDKs (Runway, Luma): their `timeout` timer stops when fetch returns,
 * at the response headers, so a server that stalls mid-body would hold a call forever. This one
 * reads the whole body before returning, which brings it under the SDK's timer; its own deadline
 * is a fallback that fails as an AbortError, the one error both SDKs (Luma checks only the name)
 * report as APIConnectionTimeoutError (and retry, except on creates: see createWithRetries).
 */
export function fetchWithinDeadline(timeoutMs: number): typeof fetch {
  return async (input, init) => {
    const deadline = new AbortController();
    const signal = init?.signal ? AbortSignal.any([init.signal, deadline.signal]) : deadline.signal;
    const timer = setTimeout(() => deadline.abort(), timeoutMs);
    try {
      const response = await fetch(input, { ...init, signal });
      if (response.body === null) return response;
      const body = await response.arrayBuffer();
      return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
    } catch (error) {
      if (deadline.signal.aborted && !init?.signal?.aborted) throw new DOMException(`No complete answer within ${timeoutMs} ms`, 'AbortError');
      throw error;
    } finally {
      clearTimeout(timer);
    }
  };
}

export interface RetryingCall extends CallContext {
  signal: AbortSignal;
}

/** The answer to a retried call: its status and headers, and its body already read. */
export interface Answer<T> {
  response: Response;
  body: T;
}

const retryable = (status: number) => status === 408 || status === 429 || status >= 500;

/**
 * Whether a create may be sent again: only when the provider answered that it did not take it
 * (429, or 5xx before it made anything). A create that timed out, lost its connection after
 * sending, or whose answer stopped midway may have made a task, and a second try would make
 * (and bill) another that nobody polls.
 */
// Not 504: a gateway that gave up waiting says nothing of whether the provider made the task.
export const createNotTaken = (status: number) => status === 429 || (status >= 500 && status !== 504);

/**
 * `fetch` with what the SDKs do for us elsewhere: a deadline per attempt (headers and whatever
 * `read` reads), and up to `maxRetries` retries on 408/429/5xx and connection errors, waiting as
 * Retry-After says or backing off exponentially. A create is retried only on 429/5xx answers
 * (see createNotTaken). Every wait ends when `signal` aborts. Returns the last answer,
 * successful or not; throws VideoProviderError when no answer came at all.
 */
export async function fetchWithRetries<T>(url: string, init: RequestInit, call: RetryingCall, read: (response: Response) => Promise<T>): Promise<Answer<T>> {
  const create = call.call === 'create';
  for (let attempt = 0; ; attempt++) {
    const last = attempt >= call.maxRetries;
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), call.timeoutMs);
    try {
      const response = await fetch(url, { ...init, signal: AbortSignal.any([call.signal, deadline.signal]) });
      if (!last && (create ? createNotTaken(response.status) : retryable(response.status))) {
        await response.body?.cancel();
        clearTimeout(timer);
        await sleep(retryDelayMs(response.headers.get('retry-after'), attempt), call.signal);
        continue;
      }
      return { response, body: await read(response) };
    } catch (error) {
      if (call.signal.aborted) throw call.signal.reason;
      if (!last && !create) {
        clearTimeout(timer);
        await sleep(backoffMs(attempt), call.signal);
        continue;
      }
      throw connectionFailure({ ...call, attempts: attempt + 1 }, deadline.signal.aborted, describe(error));
    } finally {
      clearTimeout(timer);
    }
  }
}

/** What an SDK error says the provider answered, when it answered at all. */
export interface SdkAnswer {
  status: number;
  retryAfter: string | null;
}

/**
 * An SDK create (`attempt`, which must pass `maxRetries: 0` to the SDK: the Stainless SDKs also
 * retry timeouts and dropped connections) sent again up to `maxRetries` times, only when the
 * provider answered 429 or 5xx (see createNotTaken), waiting as Retry-After says. `answered`
 * reads the status off the SDK's error; `attempt` is told which try it is (1, 2, ...), so the
 * adapter's message can count them. The last error is rethrown as the SDK threw it.
 */
export async function createWithRetries<T>(
  maxRetries: number,
  signal: AbortSignal,
  answered: (error: unknown) => SdkAnswer | null,
  attempt: (tries: number) => Promise<T>,
): Promise<T> {
  for (let tries = 1; ; tries++) {
    try {
      return await attempt(tries);
    } catch (error) {
      const answer = signal.aborted ? null : answered(error);
      if (!answer || !createNotTaken(answer.status) || tries > maxRetries) throw error;
      await sleep(retryDelayMs(answer.retryAfter, tries - 1), signal);
    }
  }
}

/** Retry-After in seconds or as an HTTP date, else the backoff; capped, since the worker has deadlines of its own. */
function retryDelayMs(retryAfter: string | null, attempt: number): number {
  return Math.min(retryAfterMs(retryAfter) ?? backoffMs(attempt), MAX_RETRY_AFTER_MS);
}

const MAX_RETRY_AFTER_MS = 60_000;

/** undici says "fetch failed" and puts the reason in `cause`. */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? error.cause.message : '';
  return cause ? `${error.message} (${cause})` : error.message;
}

/**
 * Runs one SDK call with a signal of its own that follows `signal`, and stops waiting as soon as
 * `signal` aborts (the SDKs sleep between retries without looking at it). The Stainless SDKs
 * (Runway, Luma) add an abort listener to the signal they are given and never remove it: handed
 * the job's signal, a task polled for ten minutes would pile up a listener per poll.
 */
export async function withCallSignal<T>(signal: AbortSignal, call: (signal: AbortSignal) => PromiseLike<T>): Promise<T> {
  const own = new AbortController();
  const follow = () => own.abort(signal.reason);
  signal.addEventListener('abort', follow, { once: true });
  try {
    return await untilAborted(call(own.signal), signal);
  } finally {
    signal.removeEventListener('abort', follow);
  }
}
