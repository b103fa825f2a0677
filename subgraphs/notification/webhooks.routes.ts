import type { IncomingMessage, ServerResponse } from 'node:http';
import { BodyTooLargeError, readBody } from '../../platform/http/body.js';
import { sendError, sendJson } from '../../platform/http/graphql-http.js';
import type { Handler } from '../../platform/http/server.js';
import type { Logger } from '../../platform/log.js';
import { reportOfSendGrid, reportOfTwilio, type StatusReport, type WebhooksService } from './webhooks.service.js';
import { WebhookRefused } from './webhooks/refused.js';
import { verifySendGridWebhook } from './webhooks/sendgrid-events.js';
import { verifyTwilioStatusCallback } from './webhooks/twilio-status.js';

const MAX_BODY = 1024 * 1024;
/** Where the gateway forwards the notification subgraph's webhooks from (gateway/media-proxy.ts). */
export const WEBHOOK_PATH = '/webhooks/notification';

export interface WebhookSettings {
  sendGridPublicKey: string | undefined;
  twilioAuthToken: string | undefined;
  /** The gateway's public address: Twilio signs the URL it called, which is the gateway's. */
  publicUrl(): string;
  now?: () => Date;
}

/**
 * The provider webhooks, public and unauthenticated but signed: each is verified first, and a
 * post that is unsigned, badly signed or stale is refused (403) having changed nothing.
 * Without the provider's key configured, every post is refused.
 */
export function webhookRoutes(service: WebhooksService, settings: WebhookSettings, logger: Logger): Record<string, Handler> {
  const log = logger.child({ component: 'notification-webhooks' });
  const now = settings.now ?? (() => new Date());
  const refuse = (res: ServerResponse, provider: string, why: string) => {
    log.warn({ provider, why }, 'webhook refused');
    sendError(res, 403, 'FORBIDDEN', 'The webhook signature was not accepted');
  };
  /** A post verification refused: 400 when signed but malformed, else 403. Anything else is ours to throw. */
  const refused = (res: ServerResponse, provider: string, error: unknown) => {
    if (!(error instanceof WebhookRefused)) throw error;
    if (error.refusal === 'MALFORMED') return sendError(res, 400, 'BAD_REQUEST', error.message);
    return refuse(res, provider, error.message);
  };
  const body = async (req: IncomingMessage, res: ServerResponse): Promise<Buffer | null> => {
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      sendError(res, 405, 'METHOD_NOT_ALLOWED', 'Webhooks are POSTed');
      return null;
    }
    try {
      return await readBody(req, MAX_BODY);
    } catch (error) {
      if (error instanceof BodyTooLargeError) {
        sendError(res, 413, 'PAYLOAD_TOO_LARGE', error.message);
        return null;
      }
      throw error;
    }
  };
  const apply = async (res: ServerResponse, reports: StatusReport[]) => {
    const { applied, ignored } = await service.apply(reports, now());
    sendJson(res, 200, { applied, ignored });
  };

  return {
    '/webhooks/sendgrid': async (req, res) => {
      const raw = await body(req, res);
      if (!raw) return;
      if (!settings.sendGridPublicKey) return refuse(res, 'sendgrid', 'SENDGRID_WEBHOOK_PUBLIC_KEY is not set');
      let reports: StatusReport[];
      try {
        const verified = verifySendGridWebhook({
          publicKey: settings.sendGridPublicKey,
          signature: req.headers['x-twilio-email-event-webhook-signature'],
          timestamp: req.headers['x-twilio-email-event-webhook-timestamp'],
          rawBody: raw,
          now: now(),
        });
        reports = verified.map(reportOfSendGrid).filter((r): r is StatusReport => r !== null);
      } catch (error) {
        return refused(res, 'sendgrid', error);
      }
      await apply(res, reports);
    },
    '/webhooks/twilio/status': async (req, res) => {
      const raw = await body(req, res);
      if (!raw) return;
      if (!settings.twilioAuthToken) return refuse(res, 'twilio', 'TWILIO_AUTH_TOKEN is not set');
      const params: Record<string, string | string[]> = {};
      for (const [key, value] of new URLSearchParams(raw.toString('utf8'))) {
        const known = params[key];
        params[key] = known === undefined ? value : [...(Array.isArray(known) ? known : [known]), value];
      }
      const query = (req.url ?? '').slice((req.url ?? '').indexOf('/twilio/status'));
      const url = `${settings.publicUrl().replace(/\/+$/, '')}${WEBHOOK_PATH}${query}`;
      let report: StatusReport | null;
      try {
        const update = verifyTwilioStatusCallback({ authToken: settings.twilioAuthToken, signature: req.headers['x-twilio-signature'] as string | undefined, url, params });
        report = reportOfTwilio(update, new URL(url).searchParams.get('deliveryId'));
      } catch (error) {
        return refused(res, 'twilio', error);
      }
      await apply(res, report ? [report] : []);
    },
  };
}

/** The status callback URL for one delivery (its id rides in the signed URL). */
export const twilioStatusCallbackUrl = (publicUrl: string, deliveryId: string) =>
  `${publicUrl.replace(/\/+$/, '')}${WEBHOOK_PATH}/twilio/status?deliveryId=${encodeURIComponent(deliveryId)}`;
