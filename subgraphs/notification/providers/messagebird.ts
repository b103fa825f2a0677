/**
 * The MessageBird adapter of the SMS port: `POST /messages` with `Authorization: AccessKey <key>`
 * and `{ originator, recipients: [msisdn], body, reference, reportUrl? }`, answered 201 with the
 * message, whose `id` is what status reports name it by; errors are
 * `{ errors: [{ code, description, parameter }] }`.
 *
 * Plain fetch, not the `messagebird` SDK (4.0.1): the SDK calls `https.request` with the hostname
 * fixed to rest.messagebird.com and no protocol or port setting, so it cannot reach a fake or a
 * proxy, and it takes no AbortSignal (only a socket-idle timeout).
 */
import { redact, retryAfterMs } from '../../../platform/http/provider-http.js';
import { DeliveryError, type SmsSender } from './channel.js';
import { failureOfStatus } from './resilience.js';

export interface MessageBirdSenderOptions {
  accessKey: string;
  /** A number with its country code, or up to 11 letters and digits. */
  originator: string;
  /** Instead of https://rest.messagebird.com: a fake, a proxy. */
  baseUrl?: string;
  /** The whole call, connection to the last byte of the answer. */
  timeoutMs: number;
}

const MESSAGEBIRD_URL = 'https://rest.messagebird.com';

interface MessageBirdError {
  code?: number;
  description?: string;
  parameter?: string | null;
}

export function createMessageBirdSender(options: MessageBirdSenderOptions): SmsSender {
  const { accessKey, originator, timeoutMs } = options;
  if (!accessKey) throw new RangeError('createMessageBirdSender: accessKey is required');
  if (!/^(\+?\d{1,17}|[A-Za-z0-9 ]{1,11})$/.test(originator ?? '')) throw new RangeError('createMessageBirdSender: originator must be a number or up to 11 letters and digits');
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new RangeError('createMessageBirdSender: timeoutMs must be a positive integer');
  const endpoint = messagesUrl(options.baseUrl ?? MESSAGEBIRD_URL);
  const safe = (text: string) => redact(text, accessKey).slice(0, 1000);

  return {
    name: 'messagebird',
    async send(message, { signal }) {
      signal.throwIfAborted();
      const deadline = AbortSignal.timeout(timeoutMs);
      let status: number | undefined;
      try {
        // One signal for the headers and the body: a body that stalls is the same missing answer.
        const response = await fetch(endpoint, {
          method: 'POST',
          headers: { authorization: `AccessKey ${accessKey}`, 'content-type': 'application/json', accept: 'application/json' },
          body: JSON.stringify({
            originator,
            // MessageBird documents recipients as MSISDNs: the country code and number, no '+'.
            recipients: [message.to.replace(/^\+/, '')],
            body: message.body,
            // Echoed in status reports, and required for MessageBird to send them at all. No
            // reportUrl: the status callback a message carries is Twilio's route (MessageBird's
            // reports are not read yet), and a fallback must not point MessageBird at it.
            reference: message.deliveryId,
          }),
          // A redirect would carry the key to wherever it points: refuse to follow (see httpFailure).
          redirect: 'manual',
          signal: AbortSignal.any([signal, deadline]),
        });
        status = response.status;
        const text = await response.text();
        const body = parse(text);
        if (status < 200 || status >= 300) throw httpFailure(status, errorsOf(body) ?? text.trim().slice(0, 300), response.headers.get('retry-after'), safe);
        const id = (body as { id?: unknown } | null)?.id;
        // MessageBird said yes and we cannot tell to what: sending again may send it twice.
        if (typeof id !== 'string' || !id) throw new DeliveryError('TIMEOUT', `MessageBird answered ${status} without a message id: the message may have been sent`);
        return { provider: 'messagebird', providerMessageId: id };
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        if (error instanceof DeliveryError) throw error;
        if (deadline.aborted) throw new DeliveryError('TIMEOUT', `MessageBird did not answer within ${timeoutMs} ms: the message may have been sent`);
        const cause = error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : String(error);
        // The answer began and then broke off: it may have been taken.
        if (status !== undefined && status >= 200 && status < 300) throw new DeliveryError('TIMEOUT', safe(`MessageBird's ${status} answer broke off (${cause}): the message may have been sent`));
        throw new DeliveryError('TRANSIENT', safe(`Could not reach MessageBird: ${cause}`));
      }
    },
  };
}

/** MessageBird's answer, through the one table of what a status means (resilience.ts), and its 402. */
function httpFailure(status: number, said: string, retryAfter: string | null, safe: (text: string) => string): DeliveryError {
  const detail = said ? safe(said) : null;
  // Out of balance (code 25): every message fails here until someone pays; another provider may deliver.
  if (status === 402) return new DeliveryError('AUTH', `MessageBird refused to send for lack of balance (402)${detail ? `: ${detail}` : ''}`);
  return failureOfStatus('MessageBird', status, detail, retryAfterMs(retryAfter));
}

/** "no (correct) recipients found (code 9, parameter recipient)", joined. */
function errorsOf(body: unknown): string | null {
  const errors = (body as { errors?: unknown } | null)?.errors;
  if (!Array.isArray(errors)) return null;
  const texts = (errors as MessageBirdError[]).map((e) => {
    const where = [typeof e?.code === 'number' ? `code ${e.code}` : null, e?.parameter ? `parameter ${e.parameter}` : null].filter(Boolean).join(', ');
    return `${e?.description ?? 'unknown error'}${where ? ` (${where})` : ''}`;
  });
  return texts.length ? texts.join('; ') : null;
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function messagesUrl(base: string): string {
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new RangeError(`createMessageBirdSender: baseUrl is not a URL: ${JSON.stringify(base)}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new RangeError('createMessageBirdSender: baseUrl must be http(s)');
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}/messages`;
}
