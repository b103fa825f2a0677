/**
 * The notification ports: one sender per channel, one adapter per file (email: local,
 * sendgrid, mailgun; SMS: local, twilio, messagebird). An adapter makes one attempt with a
 * deadline and says how it failed; retries with backoff, fallback to a second provider and
 * per-recipient rate limits are compositions of senders (resilience.ts), the same for both
 * channels. An adapter never touches the database.
 */

export interface OutgoingEmail {
  /** Our delivery's id: sent along (SendGrid custom_args, Mailgun v: variables) so webhooks find it. */
  deliveryId: string;
  to: string;
  subject: string;
  text: string;
  /** Rendered with every variable escaped. */
  html?: string;
}

export interface OutgoingSms {
  deliveryId: string;
  /** E.164. */
  to: string;
  body: string;
  /** Where the provider posts status changes (Twilio's StatusCallback), when webhooks are reachable. */
  statusCallbackUrl?: string;
}

export interface SendResult {
  /** "sendgrid", "mailgun", "twilio", "messagebird", "local". */
  provider: string;
  /** The provider's id of the message: what its webhooks name it by. */
  providerMessageId: string;
}

export interface Sender<M> {
  readonly name: string;
  /** One attempt. Throws DeliveryError; `signal` aborts it (the abort's reason is thrown). */
  send(message: M, options: { signal: AbortSignal }): Promise<SendResult>;
}

export type EmailSender = Sender<OutgoingEmail>;
export type SmsSender = Sender<OutgoingSms>;

/**
 * How a send failed:
 * - TRANSIENT: 5xx, a lost connection: worth another try, then another provider.
 * - RATE_LIMITED: 429 (retryAfterMs when the provider said).
 * - TIMEOUT: no answer within the deadline (the message may have gone: retry only if the provider de-duplicates).
 * - REJECTED: the provider refuses this message for good (bad address, 4xx): no retry, no fallback.
 * - AUTH: our credentials were refused: no retry here; the fallback provider may still work.
 */
export type DeliveryFailure = 'TRANSIENT' | 'RATE_LIMITED' | 'TIMEOUT' | 'REJECTED' | 'AUTH';

/** `message` is safe to store and show to an admin; it never holds a key. */
export class DeliveryError extends Error {
  constructor(
    readonly reason: DeliveryFailure,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'DeliveryError';
  }
}
