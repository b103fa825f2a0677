/**
 * The SendGrid adapter of the email port, through the official `@sendgrid/mail`: one attempt at
 * `POST /v3/mail/send`, answered 202 with the message's id in X-Message-Id. Our delivery id
 * travels in custom_args, which SendGrid copies into every Event Webhook event about the message
 * (webhooks/sendgrid-events.ts reads it back).
 */
import { MailService } from '@sendgrid/mail';
import { checkClientOptions, redact, retryAfterMs } from '../../../platform/http/provider-http.js';
import { DeliveryError, type EmailSender } from './channel.js';
import { failureOfStatus } from './resilience.js';

export interface SendGridSenderOptions {
  /** Starts with "SG.", as every SendGrid key does (the SDK would only warn, on every send). */
  apiKey: string;
  /** A verified sender: "Storyloom <hello@storyloom.app>" or a bare address. */
  from: string;
  /** With a trailing slash, e.g. "http://127.0.0.1:4010/"; SendGrid's global host when absent. */
  baseUrl?: string;
  /** The whole attempt: connection, request and answer. */
  timeoutMs: number;
}

/**
 * What the SDK's request layer reads at send time. Its typings leave out both the `client`
 * property (the one its own docs call as `sgMail.client`) and the axios options it passes on,
 * `signal` among them.
 */
interface SdkClient {
  setDefaultRequest(defaults: Record<string, unknown>): unknown;
}

/** The SDK's ResponseError: `code` is the HTTP status, `response.body` SendGrid's `{ errors }`. */
interface SdkResponseError {
  code: number;
  response: { headers?: Record<string, unknown>; body?: unknown };
}

export function createSendGridSender(options: SendGridSenderOptions): EmailSender {
  const { apiKey, from, baseUrl, timeoutMs } = options;
  checkClientOptions('createSendGridSender', { apiKey, timeoutMs, maxRetries: 0 });
  if (!apiKey.startsWith('SG.')) throw new RangeError('createSendGridSender: apiKey must be a SendGrid key (SG....)');
  if (!from.trim()) throw new RangeError('createSendGridSender: from is required');

  /**
   * A MailService per send, not one per sender: the SDK takes no per-request options, so the
   * attempt's signal can only reach axios through the client's defaults, and defaults shared by
   * concurrent sends would cross their signals. A service is a few plain objects, and never the
   * package's global instance, so nothing leaks between senders either.
   */
  const serviceFor = (signal: AbortSignal) => {
    const service = new MailService();
    service.setApiKey(apiKey);
    // After setApiKey, which sets the base URL back to the region's host.
    (service as unknown as { client: SdkClient }).client.setDefaultRequest({ signal, ...(baseUrl ? { baseUrl } : {}) });
    return service;
  };

  return {
    name: 'sendgrid',
    async send(message, { signal }) {
      signal.throwIfAborted();
      const deadline = AbortSignal.timeout(timeoutMs);
      try {
        const [response] = await serviceFor(AbortSignal.any([signal, deadline])).send({
          to: message.to,
          from,
          subject: message.subject,
          text: message.text,
          ...(message.html ? { html: message.html } : {}),
          customArgs: { deliveryId: message.deliveryId },
        });
        // SendGrid always names the message; were the header missing, the message still went,
        // and its events still find the delivery by custom_args.
        const id = header(response.headers as Record<string, unknown> | undefined, 'x-message-id');
        return { provider: 'sendgrid', providerMessageId: id ?? '' };
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        throw failure(error, deadline.aborted, options);
      }
    },
  };
}

function failure(error: unknown, timedOut: boolean, { apiKey, timeoutMs }: SendGridSenderOptions): DeliveryError {
  const safe = (e: DeliveryError) => new DeliveryError(e.reason, redact(e.message, apiKey), e.retryAfterMs);
  if (timedOut) return new DeliveryError('TIMEOUT', `SendGrid did not answer within ${timeoutMs} ms`);
  if (isResponseError(error)) {
    const headers = error.response.headers;
    return safe(failureOfStatus('SendGrid', error.code, errorsOf(error.response.body), retryAfterOf(headers)));
  }
  if (isAxiosError(error)) return safe(new DeliveryError('TRANSIENT', `Could not reach SendGrid: ${error.message}${error.code ? ` (${error.code})` : ''}`));
  // The SDK refused to build the request (Mail.create throws on data it cannot read): sending it again changes nothing.
  const text = error instanceof Error ? error.message : String(error);
  return safe(new DeliveryError('REJECTED', `SendGrid's SDK refused the message: ${text}`));
}

/** Retry-After when given; else X-RateLimit-Reset (Unix seconds), which SendGrid sends with every 429. */
function retryAfterOf(headers: Record<string, unknown> | undefined): number | undefined {
  const after = retryAfterMs(header(headers, 'retry-after'));
  if (after !== undefined) return after;
  const reset = Number(header(headers, 'x-ratelimit-reset'));
  return Number.isFinite(reset) && reset > 0 ? Math.max(0, reset * 1000 - Date.now()) : undefined;
}

/** SendGrid's `{ errors: [{ message, field }] }` as one line. */
function errorsOf(body: unknown): string | null {
  if (typeof body === 'string') return body.trim().slice(0, 500) || null;
  const errors = (body as { errors?: unknown } | null | undefined)?.errors;
  if (!Array.isArray(errors)) return null;
  const lines = errors
    .map((e: { message?: unknown; field?: unknown }) => (typeof e?.message === 'string' ? (typeof e.field === 'string' && e.field ? `${e.message} (${e.field})` : e.message) : null))
    .filter((line): line is string => line !== null);
  return lines.length > 0 ? lines.join('; ').slice(0, 500) : null;
}

/** axios gives its own AxiosHeaders, lower-cased; a plain object in the SDK's types. */
function header(headers: Record<string, unknown> | undefined, name: string): string | undefined {
  const value = headers?.[name];
  return typeof value === 'string' ? value : undefined;
}

function isResponseError(error: unknown): error is SdkResponseError {
  return error instanceof Error && typeof (error as Partial<SdkResponseError>).code === 'number' && typeof (error as Partial<SdkResponseError>).response === 'object';
}

function isAxiosError(error: unknown): error is Error & { code?: string } {
  return error instanceof Error && (error as { isAxiosError?: unknown }).isAxiosError === true;
}
