/**
 * What the provider adapters of every subgraph share about waiting: per-attempt deadlines that
 * cover the body as well as the headers, and waits that end when the caller aborts.
 */

/**
 * A fetch for SDKs whose `timeout` stops at the response headers: a server that sends headers
 * and then stalls the body would hold an attempt forever, and audio bodies are large enough to
 * stall. This one reads the whole body within the same per-attempt budget and, when it runs
 * out, fails with "timed out" in the message, which the OpenAI SDK recognises as a timeout: the
 * attempt is retried and finally reported as APIConnectionTimeoutError.
 */
export function fetchWithBodyDeadline(timeoutMs: number): (input: string | URL | Request, init?: RequestInit) => Promise<Response> {
  return async (input, init) => {
    const started = performance.now();
    const deadline = new AbortController();
    const signal = init?.signal ? AbortSignal.any([init.signal, deadline.signal]) : deadline.signal;
    const response = await fetch(input, { ...init, signal });
    if (response.body === null) return response;
    const timer = setTimeout(() => deadline.abort(), Math.max(0, timeoutMs - (performance.now() - started)));
    try {
      const body = await response.arrayBuffer();
      return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
    } catch (error) {
      if (deadline.signal.aborted && !init?.signal?.aborted) throw new Error(`Reading the response body timed out after ${timeoutMs} ms`);
      throw error;
    } finally {
      clearTimeout(timer);
    }
  };
}

/**
 * `promise`, or the signal's reason as soon as it aborts: an SDK that checks its signal only
 * between attempts, after a backoff that honours any retry-after, must not hold up shutdown.
 */
export function untilAborted<T>(promise: PromiseLike<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return Promise.resolve(promise);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/** Waits `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Provider messages are stored and shown; the key must never travel with them. */
export function redact(text: string, secret: string): string {
  return secret ? text.split(secret).join('[redacted]') : text;
}

/** "1 attempt", "3 attempts". */
export function attempts(count: number): string {
  return `${count} attempt${count === 1 ? '' : 's'}`;
}

export function checkClientOptions(adapter: string, options: { apiKey: string; timeoutMs: number; maxRetries: number }): void {
  if (!options.apiKey) throw new RangeError(`${adapter}: apiKey is required`);
  if (!Number.isInteger(options.timeoutMs) || options.timeoutMs < 1) throw new RangeError(`${adapter}: timeoutMs must be a positive integer`);
  if (!Number.isInteger(options.maxRetries) || options.maxRetries < 0) throw new RangeError(`${adapter}: maxRetries must be a whole number`);
}

/** Retry-After (seconds or an HTTP date) in milliseconds, or undefined when absent or unreadable. */
export function retryAfterMs(header: string | null | undefined, now: number = Date.now()): number | undefined {
  if (header === null || header === undefined || header.trim() === '') return undefined;
  const seconds = Number(header);
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(header) - now;
  return Number.isNaN(ms) ? undefined : Math.max(0, Math.ceil(ms));
}

/** The wait before retry `retry` (0-based): 500 ms doubling up to 8 s, less up to a quarter, so workers do not retry in step. */
export function backoffMs(retry: number): number {
  return Math.min(500 * 2 ** retry, 8_000) * (1 - Math.random() * 0.25);
}
