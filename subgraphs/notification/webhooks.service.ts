import { LockMode, type EntityManager, type MikroORM } from '@mikro-orm/postgresql';
import { isUuid } from '../../platform/formats.js';
import type { NewEvent } from '../../platform/events/envelope.js';
import { recordEvents } from '../../platform/events/outbox.js';
import type { Logger } from '../../platform/log.js';
import { Delivery, Suppression, type DeliveryStatus } from './notification.entities.js';
import * as events from './notification.events.js';
import type { SendGridEvent } from './webhooks/sendgrid-events.js';
import type { TwilioStatusUpdate } from './webhooks/twilio-status.js';

/** How far along a delivery is; a report moves it only forward (webhooks arrive out of order and twice). */
const RANK: Record<DeliveryStatus, number> = { QUEUED: 0, SENT: 1, DELIVERED: 2, OPENED: 3, CLICKED: 4, BOUNCED: 5, FAILED: 5, SUPPRESSED: 6 };
const FINAL: ReadonlySet<DeliveryStatus> = new Set(['BOUNCED', 'FAILED', 'SUPPRESSED']);

/** What a provider reported about one message, in our terms. */
export interface StatusReport {
  provider: string;
  /** Ours, when the provider echoes it (SendGrid custom_args, Twilio's callback URL). */
  deliveryId?: string;
  providerMessageId: string;
  status: 'SENT' | 'DELIVERED' | 'OPENED' | 'CLICKED' | 'BOUNCED' | 'FAILED';
  /** Suppress the address: a hard bounce (true), or its holder asking for no more ('OPT_OUT': a spam complaint, an SMS STOP). */
  suppress?: boolean | 'OPT_OUT';
  reason?: string;
}

// Twilio error codes that say the number will never take a message: unknown or landline
// handsets, invalid numbers, and a recipient who replied STOP.
const TWILIO_HARD = new Set(['30005', '30006', '21211', '21614', '21610', '30004']);

export function reportOfSendGrid(e: SendGridEvent): StatusReport | null {
  // SendGrid's message id is the X-Message-Id of the send, then ".filter…".
  const base = { provider: 'sendgrid', providerMessageId: e.sg_message_id.split('.')[0]!, ...(e.deliveryId ? { deliveryId: e.deliveryId } : {}) };
  switch (e.event) {
    case 'delivered':
      return { ...base, status: 'DELIVERED' };
    case 'open':
      return { ...base, status: 'OPENED' };
    case 'click':
      return { ...base, status: 'CLICKED' };
    case 'bounce':
      // "blocked" is a temporary refusal: this message is lost, the address is not.
      return e.type === 'blocked' ? { ...base, status: 'FAILED', reason: e.reason ?? 'blocked' } : { ...base, status: 'BOUNCED', suppress: true, reason: e.reason ?? 'bounce' };
    case 'dropped':
      // Only SendGrid's reasons about the address itself (its whole text): "Invalid SMTPAPI header" is our request's fault, not the address's.
      return { ...base, status: 'FAILED', reason: e.reason ?? 'dropped', suppress: /^(bounced address|spam reporting address|invalid)$/i.test((e.reason ?? '').trim()) };
    case 'spamreport':
      return { ...base, status: 'DELIVERED', suppress: 'OPT_OUT', reason: 'spam complaint' };
    default:
      return null; // processed, deferred, unsubscribe groups: nothing changes for the delivery
  }
}

export function reportOfTwilio(update: TwilioStatusUpdate, deliveryId: string | null): StatusReport | null {
  const base = { provider: 'twilio', providerMessageId: update.messageSid, ...(deliveryId ? { deliveryId } : {}) };
  switch (update.status) {
    case 'sent':
      return { ...base, status: 'SENT' };
    case 'delivered':
      return { ...base, status: 'DELIVERED' };
    case 'undelivered':
    case 'failed': {
      const hard = update.errorCode !== undefined && TWILIO_HARD.has(update.errorCode);
      const reason = `${update.status}${update.errorCode ? ` (Twilio error ${update.errorCode})` : ''}`;
      // 21610: the recipient replied STOP. Theirs to undo, not the account's.
      if (update.errorCode === '21610') return { ...base, status: 'BOUNCED', suppress: 'OPT_OUT', reason };
      return hard ? { ...base, status: 'BOUNCED', suppress: true, reason } : { ...base, status: 'FAILED', reason };
    }
    default:
      return null; // queued, sending, accepted…: still on its way
  }
}

const EVENT_OF: Partial<Record<StatusReport['status'], string>> = {
  DELIVERED: events.NOTIFICATION_DELIVERED,
  OPENED: events.NOTIFICATION_OPENED,
  CLICKED: events.NOTIFICATION_CLICKED,
  BOUNCED: events.NOTIFICATION_BOUNCED,
  FAILED: events.NOTIFICATION_FAILED,
};

/**
 * Applies verified provider reports: each moves its delivery forward (never back), announces
 * the step with its event once, and a hard bounce suppresses the address. Reports about a
 * message we do not know (another system's, or a deleted account's) are ignored.
 */
export class WebhooksService {
  constructor(
    private readonly orm: MikroORM,
    private readonly logger: Logger,
    private readonly onEventsCommitted: () => void,
  ) {}

  async apply(reports: readonly StatusReport[], now = new Date()): Promise<{ applied: number; ignored: number }> {
    let applied = 0;
    let emitted = 0;
    await this.orm.em.fork().transactional(async (em) => {
      const pending: NewEvent[] = [];
      // Every row the post names, locked in id order: two posts naming the same deliveries in
      // another order wait for each other instead of deadlocking.
      const named = new Set<string>();
      for (const report of reports) for (const id of await this.candidates(em, report)) named.add(id);
      if (named.size) await em.find(Delivery, { id: { $in: [...named].sort() } }, { lockMode: LockMode.PESSIMISTIC_WRITE, orderBy: { id: 'asc' }, refresh: true });
      for (const report of reports) {
        const delivery = await this.find(em, report);
        if (!delivery) continue;
        const current = delivery.status;
        const moves = !FINAL.has(current) && RANK[report.status] > RANK[current];
        // A bounce suppresses when it first moves its delivery: a repeated or late copy must not
        // undo the owner setting the address again. A complaint suppresses whatever the status.
        if (report.suppress && (moves || report.suppress === 'OPT_OUT')) await this.suppress(em, delivery, report, now);
        if (!moves) continue;
        delivery.status = report.status;
        delivery.updatedAt = now;
        if (!delivery.provider) delivery.provider = report.provider;
        if (!delivery.providerMessageId) delivery.providerMessageId = report.providerMessageId;
        if (report.status === 'BOUNCED' || report.status === 'FAILED') {
          delivery.errorCode = report.status === 'BOUNCED' ? 'BOUNCED' : 'UNDELIVERED';
          delivery.error = report.reason ?? null;
        }
        applied++;
        const type = EVENT_OF[report.status];
        if (!type) continue;
        const common = { deliveryId: delivery.id, channel: delivery.channel, provider: report.provider };
        const payload =
          report.status === 'FAILED'
            ? ({ deliveryId: delivery.id, channel: delivery.channel, provider: report.provider, code: 'UNDELIVERED', error: report.reason ?? 'undelivered' } satisfies events.NotificationFailed)
            : report.status === 'BOUNCED'
              ? ({ ...common, reason: report.reason ?? 'bounce' } satisfies events.NotificationBounced)
              : (common satisfies events.ProviderReport);
        pending.push({ type, userId: delivery.userId, payload });
      }
      await em.flush();
      await recordEvents(em, { serviceName: 'notification', correlationId: null }, pending);
      emitted = pending.length;
    });
    if (emitted) this.onEventsCommitted();
    if (applied) this.logger.info({ applied, reports: reports.length }, 'provider reports applied');
    return { applied, ignored: reports.length - applied };
  }

  /** The ids of the rows a report may name (unlocked: apply locks them all, then reads again). */
  private async candidates(em: EntityManager, report: StatusReport): Promise<string[]> {
    const where = [{ provider: report.provider, providerMessageId: report.providerMessageId }, ...(report.deliveryId && isUuid(report.deliveryId) ? [{ id: report.deliveryId }] : [])];
    return (await em.find(Delivery, { $or: where }, { fields: ['id'] })).map((d) => d.id);
  }

  /**
   * The delivery a report names, its row locked since apply began: providers post concurrently
   * (SendGrid's delivered and open in two posts at once), and two reports read-then-written
   * unlocked could move a delivery back.
   */
  private async find(em: EntityManager, report: StatusReport): Promise<Delivery | null> {
    const byId = report.deliveryId && isUuid(report.deliveryId) ? await em.findOne(Delivery, { id: report.deliveryId }) : null;
    // Our id, if the provider echoed it, must agree with the provider's: a report names one message.
    if (byId && (byId.providerMessageId === null || byId.providerMessageId === report.providerMessageId)) return byId;
    return em.findOne(Delivery, { provider: report.provider, providerMessageId: report.providerMessageId });
  }

  private async suppress(em: EntityManager, delivery: Delivery, report: StatusReport, now: Date) {
    const kind = report.suppress === 'OPT_OUT' ? 'OPT_OUT' : 'BOUNCE';
    const reason = report.reason ?? report.status;
    // An opt-out outranks a bounce already recorded: it is not lifted by the owner setting the address again.
    await em.upsert(Suppression, { channel: delivery.channel, address: delivery.address, reason, kind, deliveryId: delivery.id, createdAt: now }, kind === 'OPT_OUT' ? { onConflictFields: ['channel', 'address'], onConflictMergeFields: ['kind', 'reason'] } : { onConflictAction: 'ignore' });
  }
}
