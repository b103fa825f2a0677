/**
 * The Mailgun adapter of the email port, through the official mailgun.js: one attempt at
 * `POST /v3/{domain}/messages` (a multipart form, Basic auth `api:<key>`), answered with the
 * message's id. Our delivery id travels as the variable `v:deliveryId`, which Mailgun returns in
 * every webhook event about the message (`event-data.user-variables.deliveryId`).
 *
 * Two things mailgun.js 14 does that shape this file: it takes no AbortSignal (an abort stops our
 * wait; the request itself ends at the client's own `timeout`, the same timeoutMs), and it turns
 * every failure into one APIError with a status and no headers, so a 429's Retry-After is lost
 * and an unanswered request reads as a 400 whose message is the network error's code.
 */
import Mailgun from 'mailgun.js';
import { checkClientOptions, redact, untilAborted } from '../../../platform/http/provider-http.js';
import { DeliveryError, type EmailSender } from './channel.js';
import { failureOfStatus } from './resilience.js';

export interface MailgunSenderOptions {
  apiKey: string;
  /** The sending domain, e.g. "mg.storyloom.app". */
  domain: string;
  /** An address of that domain: "Storyloom <hello@mg.storyloom.app>" or a bare address. */
  from: string;
  /** Without /v3, e.g. "https://api.eu.mailgun.net"; api.mailgun.net (US) when absent. */
  baseUrl?: string;
  /** The whole attempt: connection, request and answer. */
  timeoutMs: number;
}

/** mailgun.js's APIError, as far as this adapter reads it. */
interface SdkApiError {
  type: 'MailgunAPIError';
  status: number;
  /** The error's `error` field, else the HTTP status text; for no answer at all, the network error's code. */
  message: string;
  /** Mailgun's own message (`{ message }`, or the body when it is text). */
  details?: string;
}

/** The codes axios gives a request that got no answer; mailgun.js passes them on as the error's message. */
const NO_ANSWER = /^(E[A-Z]+|ERR_[A-Z_]+)$/;
const TIMED_OUT = new Set(['ECONNABORTED', 'ETIMEDOUT']);

export function createMailgunSender(options: MailgunSenderOptions): EmailSender {
  const { apiKey, domain, from, baseUrl, timeoutMs } = options;
  checkClientOptions('createMailgunSender', { apiKey, timeoutMs, maxRetries: 0 });
  if (!domain.trim()) throw new RangeError('createMailgunSender: domain is required');
  if (!from.trim()) throw new RangeError('createMailgunSender: from is required');
  // Node 20's own FormData: mailgun.js builds the multipart body from it, axios streams it.
  const client = new Mailgun(FormData).client({ username: 'api', key: apiKey, timeout: timeoutMs, ...(baseUrl ? { url: baseUrl } : {}) });
  // The key also travels base64-encoded in the Basic credentials; neither form may reach a message.
  const secrets = [apiKey, Buffer.from(`api:${apiKey}`).toString('base64')];
  const safe = (e: DeliveryError) => new DeliveryError(e.reason, secrets.reduce((text, secret) => redact(text, secret), e.message), e.retryAfterMs);

  return {
    name: 'mailgun',
    async send(message, { signal }) {
      signal.throwIfAborted();
      const deadline = AbortSignal.timeout(timeoutMs);
      try {
        const sent = client.messages.create(domain, {
          from,
          to: message.to,
          subject: message.subject,
          text: message.text,
          ...(message.html ? { html: message.html } : {}),
          'v:deliveryId': message.deliveryId,
        });
        // Our deadline too: the client's timeout is axios's, which a server trickling its answer can outlast.
        const result = await untilAborted(sent, AbortSignal.any([signal, deadline]));
        return { provider: 'mailgun', providerMessageId: messageIdOf(result.id) };
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        if (deadline.aborted) throw new DeliveryError('TIMEOUT', `Mailgun did not answer within ${timeoutMs} ms`);
        throw safe(failure(error, timeoutMs));
      }
    },
  };
}

function failure(error: unknown, timeoutMs: number): DeliveryError {
  if (!isApiError(error)) {
    // mailgun.js wraps every HTTP outcome in an APIError: anything else failed building the request, and would again.
    const text = error instanceof Error ? error.message : String(error);
    return new DeliveryError('REJECTED', `mailgun.js refused the message: ${text}`);
  }
  if (error.status === 400 && NO_ANSWER.test(error.message)) {
    if (TIMED_OUT.has(error.message)) return new DeliveryError('TIMEOUT', `Mailgun did not answer within ${timeoutMs} ms`);
    return new DeliveryError('TRANSIENT', `Could not reach Mailgun: ${error.details || error.message} (${error.message})`);
  }
  // mailgun.js drops the response headers: a 429 comes without its Retry-After, and withRetries backs off instead.
  return failureOfStatus('Mailgun', error.status, detailOf(error));
}

/** Mailgun's message, else the error field or status text mailgun.js kept. */
function detailOf(error: SdkApiError): string | null {
  const text = (error.details || error.message || '').trim();
  return text ? text.slice(0, 500) : null;
}

/**
 * Mailgun answers `<20260101120000.1.ABC@mg.example>`; its webhooks name the message without the
 * angle brackets (`event-data.message.headers.message-id`), which is what we keep.
 */
function messageIdOf(id: string | undefined): string {
  return (id ?? '').trim().replace(/^<(.*)>$/, '$1');
}

function isApiError(error: unknown): error is SdkApiError {
  return typeof error === 'object' && error !== null && (error as { type?: unknown }).type === 'MailgunAPIError' && typeof (error as { status?: unknown }).status === 'number';
}
