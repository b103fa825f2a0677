/**
 * Compositions of senders, the same for every channel: retries with backoff and fallback to
 * another provider. Each takes a Sender<M> and returns one, so the usual stack reads inside out:
 *
 *   withFallback([withRetries(sendgrid, policy), withRetries(mailgun, policy)])
 *
 * A RATE_LIMITED failure from here is always a provider's (429): the per-recipient limit is the
 * delivery worker's (delivery.worker.ts), counted in the delivery table. Also here: the one table of what an HTTP answer means for a send (failureOfStatus), which every
 * remote adapter uses, so "what is retried" and "what is worth retrying" cannot drift apart.
 */
import { attempts, sleep } from '../../../platform/http/provider-http.js';
import { DeliveryError, type DeliveryFailure, type Sender } from './channel.js';

/**
 * The failure an HTTP answer means. `provider` names it for people ("SendGrid"); `detail` is
 * the provider's own error text. 404 is our configuration (base URL, Mailgun domain), not the
 * message: AUTH, so another provider may still take it, where REJECTED would fail it for good.
 */
export function failureOfStatus(provider: string, status: number, detail: string | null, retryAfterMs?: number): DeliveryError {
  const said = detail ? `: ${detail}` : '';
  if (status === 401 || status === 403) return new DeliveryError('AUTH', `${provider} refused our credentials (${status})${said}`);
  if (status === 404) return new DeliveryError('AUTH', `${provider} does not know this endpoint (404)${said}: check its base URL and sending domain`);
  if (status === 429) return new DeliveryError('RATE_LIMITED', `${provider} is rate limiting us (429)${said}`, retryAfterMs);
  // 408: the request did not arrive whole, so the provider did not take the message.
  if (status === 408 || status >= 500) return new DeliveryError('TRANSIENT', `${provider} answered ${status}${said}`);
  if (status >= 400) return new DeliveryError('REJECTED', `${provider} refused the message (${status})${said}`);
  return new DeliveryError('TRANSIENT', `${provider} answered an unexpected ${status}${said}`);
}

export interface RetryPolicy {
  /** Tries after the first one: 2 means at most 3 sends. */
  maxRetries: number;
  /** The first wait; each next one doubles, up to maxDelayMs, less up to half of it as jitter. */
  baseDelayMs: number;
  /** The longest wait; a Retry-After beyond it is not waited out here (the error goes up). */
  maxDelayMs: number;
  /** [0, 1); for tests. */
  random?: () => number;
}

/**
 * Sends again after TRANSIENT and RATE_LIMITED failures, waiting with jittered exponential
 * backoff (and at least what Retry-After asked). Never after REJECTED or AUTH (the same answer
 * would come), nor after TIMEOUT: the provider may have taken the message, and neither SendGrid
 * nor Mailgun de-duplicates, so a second send could reach the recipient twice. The last error
 * is thrown, its message counting the attempts. Waits end when the signal aborts.
 */
export function withRetries<M>(sender: Sender<M>, policy: RetryPolicy): Sender<M> {
  const { maxRetries, baseDelayMs, maxDelayMs, random = Math.random } = policy;
  if (!Number.isInteger(maxRetries) || maxRetries < 0) throw new RangeError('withRetries: maxRetries must be a whole number');
  if (!(baseDelayMs >= 0) || !(maxDelayMs >= baseDelayMs)) throw new RangeError('withRetries: need 0 <= baseDelayMs <= maxDelayMs');

  const waitBefore = (error: DeliveryError, retry: number): number | null => {
    if (error.reason !== 'TRANSIENT' && error.reason !== 'RATE_LIMITED') return null;
    const step = Math.min(maxDelayMs, baseDelayMs * 2 ** retry);
    // Never less than half the step: retries of many messages that failed together spread out
    // instead of bunching near zero.
    const backoff = Math.round(step / 2 + (random() * step) / 2);
    if (error.reason === 'RATE_LIMITED' && error.retryAfterMs !== undefined) return error.retryAfterMs > maxDelayMs ? null : Math.max(error.retryAfterMs, backoff);
    return backoff;
  };

  return {
    name: sender.name,
    async send(message, { signal }) {
      for (let retry = 0; ; retry++) {
        signal.throwIfAborted();
        try {
          return await sender.send(message, { signal });
        } catch (error) {
          // The port's promise: an aborted send throws the abort's reason, whatever the attempt threw.
          if (signal.aborted) throw signal.reason;
          if (!(error instanceof DeliveryError)) throw error;
          const wait = retry < maxRetries ? waitBefore(error, retry) : null;
          if (wait === null) throw retry === 0 ? error : new DeliveryError(error.reason, `${error.message} (${attempts(retry + 1)})`, error.retryAfterMs);
          await sleep(wait, signal);
        }
      }
    },
  };
}

/** Which failures send the message on to the next provider: all but REJECTED, which another provider would refuse too. */
const FALLS_BACK: ReadonlySet<DeliveryFailure> = new Set(['TRANSIENT', 'RATE_LIMITED', 'TIMEOUT', 'AUTH']);

/**
 * When every provider failed, the reason that says most about trying later: a TRANSIENT or
 * RATE_LIMITED provider may recover; a TIMEOUT may already have delivered; AUTH needs a person.
 */
const LATER: readonly DeliveryFailure[] = ['TRANSIENT', 'RATE_LIMITED', 'TIMEOUT', 'AUTH'];

export interface FallbackOptions {
  /** Told when a provider fails and the next one is tried. */
  onFallback?: (failed: { provider: string; error: DeliveryError; next: string }) => void;
}

/**
 * Tries each sender in turn (wrap each in withRetries first: a provider's retries happen before
 * the next one is asked), moving on after TRANSIENT, RATE_LIMITED, TIMEOUT or AUTH. REJECTED
 * ends it: the message itself is refused. When all fail, one DeliveryError tells each one's story.
 */
export function withFallback<M>(senders: readonly Sender<M>[], options: FallbackOptions = {}): Sender<M> {
  if (senders.length === 0) throw new RangeError('withFallback: at least one sender');
  const chain = [...senders];
  return {
    name: chain.map((s) => s.name).join('|'),
    async send(message, { signal }) {
      const failures: { name: string; error: DeliveryError }[] = [];
      for (const [i, sender] of chain.entries()) {
        signal.throwIfAborted();
        try {
          return await sender.send(message, { signal });
        } catch (error) {
          if (signal.aborted) throw signal.reason;
          if (!(error instanceof DeliveryError) || !FALLS_BACK.has(error.reason)) throw error;
          failures.push({ name: sender.name, error });
          const next = chain[i + 1];
          if (next) options.onFallback?.({ provider: sender.name, error, next: next.name });
        }
      }
      if (failures.length === 1) throw failures[0]!.error;
      const reason = LATER.find((r) => failures.some((f) => f.error.reason === r))!;
      const waits = failures.filter((f) => f.error.reason === reason && f.error.retryAfterMs !== undefined).map((f) => f.error.retryAfterMs!);
      const story = failures.map((f) => `${f.name}: ${f.error.message}`).join('; ');
      throw new DeliveryError(reason, `Every provider failed (${story})`, waits.length > 0 ? Math.min(...waits) : undefined);
    },
  };
}
