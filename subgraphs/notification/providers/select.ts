import { join } from 'node:path';
import type { Config } from '../../../platform/config.js';
import type { Logger } from '../../../platform/log.js';
import type { OutgoingEmail, OutgoingSms, Sender } from './channel.js';
import { createLocalEmailSender } from './email-local.js';
import { createMailgunSender } from './mailgun.js';
import { createMessageBirdSender } from './messagebird.js';
import { withFallback, withRetries } from './resilience.js';
import { createSendGridSender } from './sendgrid.js';
import { createLocalSmsSender } from './sms-local.js';
import { createTwilioSender } from './twilio.js';

export interface Senders {
  email: Sender<OutgoingEmail>;
  sms: Sender<OutgoingSms>;
  /** Which providers each channel tries, in order (for the log at start). */
  chains: { email: string[]; sms: string[] };
  /** Where `local` writes (tests and a developer read it). */
  mailboxDir: string;
}

/**
 * The senders the settings ask for: per channel the providers of NOTIFICATION_*_PROVIDERS in
 * order, each retried with backoff on transient failures, then the next as fallback. The
 * per-recipient rate limit is not here: the delivery worker holds it (rateLimitPerHour),
 * counting sends in the delivery table, so it holds across replicas and restarts and a limited
 * message waits without using up a round.
 */
export function sendersFor(config: Config, logger: Logger): Senders {
  const mailboxDir = config.NOTIFICATION_MAILBOX_DIR ?? join(config.DATA_DIR, 'mailbox');
  const timeoutMs = config.NOTIFICATION_TIMEOUT_MS;
  const retry = <M>(sender: Sender<M>) =>
    withRetries(sender, { maxRetries: config.NOTIFICATION_MAX_RETRIES, baseDelayMs: config.NOTIFICATION_RETRY_BASE_MS, maxDelayMs: config.NOTIFICATION_RETRY_BASE_MS * 16 });
  const log = logger.child({ component: 'notification-senders' });
  const onFallback = (channel: string) => (f: { provider: string; error: Error; next: string }) =>
    log.warn({ channel, provider: f.provider, next: f.next, err: f.error.message }, 'provider failed, trying the next one');

  const email = config.NOTIFICATION_EMAIL_PROVIDERS.map((name): Sender<OutgoingEmail> => {
    switch (name) {
      case 'sendgrid':
        return createSendGridSender({ apiKey: config.SENDGRID_API_KEY!, from: config.NOTIFICATION_EMAIL_FROM, baseUrl: config.SENDGRID_BASE_URL, timeoutMs });
      case 'mailgun':
        return createMailgunSender({ apiKey: config.MAILGUN_API_KEY!, domain: config.MAILGUN_DOMAIN!, from: config.NOTIFICATION_EMAIL_FROM, baseUrl: config.MAILGUN_BASE_URL, timeoutMs });
      case 'local':
        return createLocalEmailSender({ mailboxDir: join(mailboxDir, 'email'), from: config.NOTIFICATION_EMAIL_FROM, logger: log });
    }
  });
  const sms = config.NOTIFICATION_SMS_PROVIDERS.map((name): Sender<OutgoingSms> => {
    switch (name) {
      case 'twilio':
        return createTwilioSender({
          accountSid: config.TWILIO_ACCOUNT_SID!,
          authToken: config.TWILIO_AUTH_TOKEN!,
          from: config.TWILIO_FROM,
          messagingServiceSid: config.TWILIO_MESSAGING_SERVICE_SID,
          baseUrl: config.TWILIO_BASE_URL,
          timeoutMs,
        });
      case 'messagebird':
        return createMessageBirdSender({ accessKey: config.MESSAGEBIRD_ACCESS_KEY!, originator: config.MESSAGEBIRD_ORIGINATOR!, baseUrl: config.MESSAGEBIRD_BASE_URL, timeoutMs });
      case 'local':
        return createLocalSmsSender({ outboxDir: join(mailboxDir, 'sms') });
    }
  });
  return {
    email: withFallback(email.map(retry), { onFallback: onFallback('EMAIL') }),
    sms: withFallback(sms.map(retry), { onFallback: onFallback('SMS') }),
    chains: { email: email.map((s) => s.name), sms: sms.map((s) => s.name) },
    mailboxDir,
  };
}
