/**
 * What the two ElevenLabs adapters share: one SDK client, and one loop of attempts around each
 * call. The SDK builds the requests (auth header, multipart, query, serialisation) but its
 * waiting does not fit a narration worker, so the loop here owns it:
 * - the SDK retries only on a status (408, 429, 5xx), never on a timeout or a dropped
 *   connection, and its backoff (from 1 s, honouring Retry-After up to 60 s) ignores the abort
 *   signal;
 * - its timeout stops at the response headers, and in Node it surfaces as an ElevenLabsError
 *   whose message is '"timeout"' (undici rejects with the abort reason, a bare string), not as
 *   the ElevenLabsTimeoutError it declares.
 * So the SDK is given maxRetries 0 and each attempt gets a deadline of our own, passed as its
 * abortSignal, that also covers reading the audio.
 */
import { ElevenLabsClient, ElevenLabsError } from '@elevenlabs/elevenlabs-js';
import { attempts, backoffMs, checkClientOptions, redact, retryAfterMs, sleep } from '../../../platform/http/provider-http.js';
import { ProviderFailed } from './speech.js';

export interface ElevenLabsConnection {
  apiKey: string;
  /** Without `/v1`, like https://api.elevenlabs.io (the SDK's default when absent). */
  baseUrl?: string;
  /** Per attempt, from sending the request to the last byte of the answer. */
  timeoutMs: number;
  /** Retries after the first attempt, for timeouts, connection errors, 408/409/429/5xx (creating a voice: 408/429 only). */
  maxRetries: number;
}

export interface AttemptOptions {
  abortSignal: AbortSignal;
  timeoutInSeconds: number;
  maxRetries: 0;
}

/** A Retry-After longer than this is not worth holding a narration for: the attempt fails instead. */
const MAX_RETRY_AFTER_MS = 60_000;

export class ElevenLabsCaller {
  readonly client: ElevenLabsClient;
  readonly #options: ElevenLabsConnection;

  constructor(adapter: string, options: ElevenLabsConnection) {
    checkClientOptions(adapter, options);
    this.#options = { ...options };
    this.client = new ElevenLabsClient({ apiKey: options.apiKey, baseUrl: options.baseUrl, maxRetries: 0 });
  }

  /**
   * Runs `attempt` until it succeeds, fails for good, or the retries run out. `attempt` must
   * finish reading its answer before it returns: the deadline ends with it. A call that is not
   * `idempotent` (creating a voice) is retried only when the server surely did nothing (408,
   * 429): after a timeout, a dropped connection or a 5xx the voice may exist, and a second
   * attempt would make a second one.
   */
  async call<T>(attempt: (options: AttemptOptions) => Promise<T>, options: { signal?: AbortSignal; idempotent: boolean }): Promise<T> {
    const { signal, idempotent } = options;
    const { timeoutMs, maxRetries } = this.#options;
    for (let retry = 0; ; retry++) {
      signal?.throwIfAborted();
      const deadline = new AbortController();
      const timer = setTimeout(() => deadline.abort(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
      const abortSignal = signal ? AbortSignal.any([signal, deadline.signal]) : deadline.signal;
      let outcome: ReturnType<ElevenLabsCaller['classify']>;
      try {
        // The SDK's own timeout is a backstop behind ours (see above).
        return await attempt({ abortSignal, timeoutInSeconds: timeoutMs / 1000 + 5, maxRetries: 0 });
      } catch (error) {
        if (signal?.aborted) throw signal.reason ?? error;
        outcome = this.classify(error, { timedOut: deadline.signal.aborted, idempotent, attempts: retry + 1 });
      } finally {
        clearTimeout(timer);
      }
      if (!outcome.retryable || retry >= maxRetries) throw outcome.failure;
      const wait = outcome.retryAfterMs ?? backoffMs(retry);
      if (wait > MAX_RETRY_AFTER_MS) throw outcome.failure;
      await sleep(wait, signal);
    }
  }

  /** What an attempt's error means: the failure to report, whether another attempt may help, and the wait the server asked for. */
  private classify(
    error: unknown,
    { timedOut, idempotent, attempts: made }: { timedOut: boolean; idempotent: boolean; attempts: number },
  ): { failure: unknown; retryable: boolean; retryAfterMs?: number } {
    const { apiKey, timeoutMs } = this.#options;
    // The attempts made so far; a failure that is retried is never shown, so the count is right when it is.
    const tries = attempts(made);
    if (timedOut) {
      return { failure: new ProviderFailed('TIMEOUT', `ElevenLabs did not answer within ${timeoutMs} ms (${tries}).`), retryable: idempotent };
    }
    if (!(error instanceof ElevenLabsError)) {
      // The SDK validates what it parses: an answer without the fields it promises.
      if (error instanceof Error && (error.name === 'JsonError' || error.name === 'ParseError')) {
        return { failure: new ProviderFailed('INVALID_RESPONSE', redact(`ElevenLabs answered with an unexpected shape: ${error.message}`, apiKey)), retryable: false };
      }
      return { failure: error, retryable: false };
    }
    const status = error.statusCode;
    if (status === undefined) {
      const cause = error.cause instanceof Error && error.cause.cause instanceof Error ? ` (${error.cause.cause.message})` : '';
      return { failure: new ProviderFailed('PROVIDER_ERROR', redact(`Could not reach ElevenLabs (${tries}): ${firstLine(error.message)}${cause}`, apiKey)), retryable: idempotent };
    }
    const { code, message } = errorDetail(error.body);
    if (status === 401 && code === 'quota_exceeded') {
      // ElevenLabs says 401 for an account out of credits, too: the key is fine, the plan is not.
      return { failure: new ProviderFailed('PROVIDER_ERROR', redact(`ElevenLabs quota exceeded: ${message || 'no credits left'}`, apiKey)), retryable: false };
    }
    if (status === 401) {
      return { failure: new ProviderFailed('PROVIDER_ERROR', 'ElevenLabs refused the API key (401): check the ElevenLabs API key configured for narration.'), retryable: false };
    }
    const failure = new ProviderFailed('PROVIDER_ERROR', redact(`ElevenLabs answered ${status}${code ? ` ${code}` : ''}${message ? `: ${message}` : ''}`, apiKey));
    const retryable = status === 408 || status === 429 || (idempotent && (status === 409 || status >= 500));
    return { failure, retryable, retryAfterMs: retryAfterMs(error.rawResponse?.headers.get('retry-after')) };
  }
}

function firstLine(text: string): string {
  return text.split('\n')[0]!.replace(/^"|"$/g, '');
}

/**
 * ElevenLabs errors are `{ detail: { status, message } }`, or FastAPI's validation list
 * `{ detail: [{ loc, msg, type }] }` for a 422, or a bare string.
 */
function errorDetail(body: unknown): { code: string; message: string } {
  const detail = typeof body === 'object' && body !== null ? (body as { detail?: unknown }).detail : body;
  if (typeof detail === 'string') return { code: '', message: detail };
  if (Array.isArray(detail)) {
    const messages = detail.map((d: { loc?: unknown; msg?: unknown }) => `${Array.isArray(d?.loc) ? `${d.loc.join('.')}: ` : ''}${String(d?.msg ?? '')}`);
    return { code: '', message: messages.join('; ') };
  }
  if (typeof detail === 'object' && detail !== null) {
    const { status, message } = detail as { status?: unknown; message?: unknown };
    return { code: typeof status === 'string' ? status : '', message: typeof message === 'string' ? message : '' };
  }
  return { code: '', message: '' };
}

