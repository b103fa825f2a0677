import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import pg from 'pg';
import { tableOf } from '../../platform/db/tables.js';
import type { NewEvent } from '../../platform/events/envelope.js';
import { recordEvents } from '../../platform/events/outbox.js';
import type { Logger } from '../../platform/log.js';
import { isSealed } from './causes.js';
import { wakeChannel } from './deliveries.js';
import { Delivery, Suppression } from './notification.entities.js';
import * as events from './notification.events.js';
import { DeliveryError, type OutgoingEmail, type OutgoingSms, type Sender, type SendResult } from './providers/channel.js';
import { renderTemplate, type TemplateVariables } from './templates/render.js';
import { resolveTemplate } from './templates/resolve.js';
import { withResolvedBody, type SourceOptions } from './templates/sources.js';
import { TemplateError, type TemplateStore } from './templates/template.js';

export interface DeliveryWorkerOptions {
  orm: MikroORM;
  senders: { email: Sender<OutgoingEmail>; sms: Sender<OutgoingSms> };
  store: (em: EntityManager) => TemplateStore;
  defaults: TemplateStore;
  sources: SourceOptions;
  /** Opens a sealed variable (an invite link); throws when it does not open. */
  unseal(sealed: string): string;
  /** Where Twilio posts a message's status (through the gateway), or null when not reachable. */
  statusCallbackUrl(deliveryId: string): string | null;
  concurrency: number;
  pollMs: number;
  leaseMs: number;
  maxAttempts: number;
  /** The first wait after a round of every provider failed; doubles each round. */
  retryBaseMs: number;
  logger: Logger;
  onEventsCommitted(): void;
  now?: () => Date;
}

/** What went wrong with a delivery, and whether it is worth another round. */
interface Outcome {
  code: string;
  message: string;
  retry: boolean;
  retryAfterMs?: number;
}

/**
 * Sends queued deliveries. The delivery table is the queue: due QUEUED rows are claimed with
 * FOR UPDATE SKIP LOCKED under a lease (several replicas share the work; a crashed sender's
 * rows come back when the lease runs out). A commit that queues deliveries wakes the worker
 * through LISTEN/NOTIFY; a poll covers a lost notification. A round tries the providers of the
 * channel in order, with retries (providers/select.ts); a round that fails transiently is tried
 * again later with backoff, up to maxAttempts rounds.
 */
export class DeliveryWorker {
  private readonly log: Logger;
  private readonly now: () => Date;
  private inFlight = 0;
  private running = false;
  private timer: NodeJS.Timeout | null = null;
  private listener: pg.Client | null = null;
  private ticking: Promise<void> | null = null;
  private wakeAgain = false;
  private readonly sends = new Set<Promise<void>>();
  private aborts = new AbortController();

  constructor(private readonly options: DeliveryWorkerOptions) {
    this.log = options.logger.child({ worker: 'notification-delivery' });
    this.now = options.now ?? (() => new Date());
  }

  async start(): Promise<void> {
    this.running = true;
    if (this.aborts.signal.aborted) this.aborts = new AbortController();
    await this.listen();
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    await this.ticking;
    // Sends under way are cut short and go back to the queue for the next worker.
    this.aborts.abort(new Error('the delivery worker is stopping'));
    await Promise.allSettled([...this.sends]);
    await this.listener?.end().catch(() => {});
    this.listener = null;
  }

  /** Looks for due deliveries now (tests, and after a commit in this process). */
  wake(): void {
    if (!this.running) return;
    if (this.ticking) {
      this.wakeAgain = true;
      return;
    }
    this.schedule(0);
  }

  private schedule(ms: number) {
    if (!this.running) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.ticking = this.tick()
        .catch((error: unknown) => this.log.warn({ err: error }, 'could not claim deliveries'))
        .finally(() => {
          this.ticking = null;
          const again = this.wakeAgain;
          this.wakeAgain = false;
          this.schedule(again ? 0 : this.options.pollMs);
        });
    }, ms);
    this.timer.unref();
  }

  private async listen(): Promise<void> {
    const em = this.options.orm.em.fork();
    const client = new pg.Client({ connectionString: this.options.orm.config.get('clientUrl') });
    client.on('error', (error) => {
      this.log.warn({ err: error }, 'lost the wake-up connection; polling until it is back');
      this.listener = null;
      client.end().catch(() => {});
      if (this.running) setTimeout(() => void this.listen().catch(() => {}), this.options.pollMs).unref();
    });
    client.on('notification', () => this.wake());
    try {
      await client.connect();
      await client.query(`listen "${wakeChannel(em)}"`);
      this.listener = client;
    } catch (error) {
      this.log.warn({ err: error }, 'could not listen for new deliveries; polling');
      await client.end().catch(() => {});
    }
  }

  private async tick(): Promise<void> {
    const free = this.options.concurrency - this.inFlight;
    if (free <= 0 || !this.running) return;
    const claimed = await this.claim(free);
    for (const delivery of claimed) {
      this.inFlight++;
      const send = this.deliver(delivery)
        .catch((error: unknown) => this.log.error({ err: error, deliveryId: delivery.id }, 'delivery failed unexpectedly'))
        .finally(() => {
          this.inFlight--;
          this.sends.delete(send);
          this.wake();
        });
      this.sends.add(send);
    }
    // A full claim may have left more behind.
    if (claimed.length === free) this.wakeAgain = true;
  }

  private async claim(limit: number): Promise<Delivery[]> {
    const em = this.options.orm.em.fork();
    const now = this.now();
    const rows: Record<string, unknown>[] = await em.getConnection().execute(
      `update ${tableOf(em, 'delivery')} set "lease_until" = ?, "attempts" = "attempts" + 1, "updated_at" = ?
       where "id" in (
         select "id" from ${tableOf(em, 'delivery')}
         where "status" = 'QUEUED' and "next_attempt_at" <= ? and ("lease_until" is null or "lease_until" < ?)
         order by "next_attempt_at" limit ? for update skip locked)
       returning *`,
      [new Date(now.getTime() + this.options.leaseMs), now, now, now, limit],
      'all',
    );
    return rows.map((row) => em.map(Delivery, row));
  }

  private async deliver(delivery: Delivery): Promise<void> {
    const em = this.options.orm.em.fork();
    const log = this.log.child({ deliveryId: delivery.id, channel: delivery.channel, template: delivery.templateKey });
    if (await em.findOne(Suppression, { channel: delivery.channel, address: delivery.address })) {
      await this.finish(delivery, { status: 'SUPPRESSED', errorCode: 'SUPPRESSED', error: 'The address bounced before' });
      return;
    }
    let result: SendResult;
    try {
      const message = await this.render(em, delivery);
      // The send must end while the lease is ours (rendering may have used some of it): past
      // it, another worker may claim the row and send the message a second time.
      const deadlineMs = Math.max(0, Math.floor(delivery.leaseUntil!.getTime() - this.now().getTime() - this.options.leaseMs / 10));
      const signal = AbortSignal.any([this.aborts.signal, AbortSignal.timeout(deadlineMs)]);
      result =
        delivery.channel === 'EMAIL'
          ? await this.options.senders.email.send({ deliveryId: delivery.id, to: delivery.address, subject: message.subject ?? '', text: message.text, ...(message.html ? { html: message.html } : {}) }, { signal })
          : await this.options.senders.sms.send({ deliveryId: delivery.id, to: delivery.address, body: message.text, ...this.callbackOf(delivery.id) }, { signal });
    } catch (error) {
      if (this.aborts.signal.aborted) {
        // Cut short by stop(): not a failed round. The row goes back to the queue as it was, due now.
        log.info({ attempts: delivery.attempts }, 'delivery handed back: the worker is stopping');
        await this.release(delivery);
        return;
      }
      const outcome = outcomeOf(error);
      const retry = outcome.retry && delivery.attempts < this.options.maxAttempts;
      if (retry) {
        const backoff = this.options.retryBaseMs * 2 ** (delivery.attempts - 1);
        const at = new Date(this.now().getTime() + Math.max(backoff, outcome.retryAfterMs ?? 0));
        log.warn({ code: outcome.code, err: outcome.message, attempts: delivery.attempts, retryAt: at.toISOString() }, 'delivery will be retried');
        await this.requeue(delivery, at, outcome);
      } else {
        log.warn({ code: outcome.code, err: outcome.message, attempts: delivery.attempts }, 'delivery failed');
        await this.finish(delivery, { status: 'FAILED', errorCode: outcome.code, error: outcome.message, provider: null });
      }
      return;
    }
    log.info({ provider: result.provider, providerMessageId: result.providerMessageId, attempts: delivery.attempts }, 'delivery sent');
    await this.finish(delivery, { status: 'SENT', provider: result.provider, providerMessageId: result.providerMessageId });
  }

  private callbackOf(deliveryId: string): { statusCallbackUrl?: string } {
    const url = this.options.statusCallbackUrl(deliveryId);
    return url ? { statusCallbackUrl: url } : {};
  }

  private async render(em: EntityManager, delivery: Delivery) {
    const resolved = await resolveTemplate(this.options.store(em), this.options.defaults, delivery.templateKey, delivery.channel, delivery.locale);
    if (!resolved) throw new TemplateError('INVALID_TEMPLATE', `No ${delivery.channel} template for ${delivery.templateKey} in ${delivery.locale} or a fallback`);
    const definition = await withResolvedBody(resolved.definition, this.options.sources);
    const variables: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(delivery.variables)) variables[name] = isSealed(value) ? this.options.unseal(value.$sealed) : value;
    return renderTemplate(definition, variables as TemplateVariables, { locale: delivery.locale });
  }

  /** Only while the lease is still this worker's: once it ran out, another worker may hold the row. */
  private async requeue(delivery: Delivery, at: Date, outcome: Outcome): Promise<void> {
    const em = this.options.orm.em.fork();
    await em.nativeUpdate(
      Delivery,
      { id: delivery.id, status: 'QUEUED', leaseUntil: delivery.leaseUntil },
      { nextAttemptAt: at, leaseUntil: null, errorCode: outcome.code, error: outcome.message, updatedAt: this.now() },
    );
  }

  /** Gives an interrupted claim back: its attempt is not counted, and any worker may take it at once. */
  private async release(delivery: Delivery): Promise<void> {
    const em = this.options.orm.em.fork();
    await em.nativeUpdate(Delivery, { id: delivery.id, status: 'QUEUED', leaseUntil: delivery.leaseUntil }, { leaseUntil: null, attempts: delivery.attempts - 1, updatedAt: this.now() });
  }

  /**
   * Records how the send ended, with its event, in one transaction. A webhook may have got
   * here first (a fast provider reports delivery before the send's answer is stored): the
   * status then stays as the webhook left it, and only the provider's ids are added.
   */
  private async finish(
    delivery: Delivery,
    end: { status: 'SENT' | 'FAILED' | 'SUPPRESSED'; provider?: string | null; providerMessageId?: string; errorCode?: string; error?: string },
  ): Promise<void> {
    const committed = await this.options.orm.em.fork().transactional(async (em) => {
      const rows: { status: string }[] = await em.getConnection().execute(
        `update ${tableOf(em, 'delivery')} set
           "status" = case when "status" = 'QUEUED' then ? else "status" end,
           "provider" = coalesce(?, "provider"), "provider_message_id" = coalesce(?, "provider_message_id"),
           "error_code" = case when "status" = 'QUEUED' then ? else "error_code" end,
           "error" = case when "status" = 'QUEUED' then ? else "error" end,
           "lease_until" = null, "updated_at" = ?
         where "id" = ? returning "status"`,
        [end.status, end.provider ?? null, end.providerMessageId ?? null, end.errorCode ?? null, end.error ?? null, this.now(), delivery.id],
        'all',
        em.getTransactionContext(),
      );
      if (rows.length === 0) return 0; // gone meanwhile (the account was deleted)
      const pending: NewEvent[] = [];
      if (end.status === 'SENT') {
        pending.push({ type: events.NOTIFICATION_SENT, userId: delivery.userId, payload: { deliveryId: delivery.id, channel: delivery.channel, provider: end.provider!, attempts: delivery.attempts } satisfies events.NotificationSent });
      } else if (end.status === 'FAILED') {
        pending.push({ type: events.NOTIFICATION_FAILED, userId: delivery.userId, payload: { deliveryId: delivery.id, channel: delivery.channel, provider: null, code: end.errorCode!, error: end.error! } satisfies events.NotificationFailed });
      }
      await recordEvents(em, { serviceName: 'notification', correlationId: delivery.correlationId }, pending);
      return pending.length;
    });
    if (committed) this.options.onEventsCommitted();
  }
}

function outcomeOf(error: unknown): Outcome {
  if (error instanceof DeliveryError) {
    // REJECTED: the message itself is refused; sending it again changes nothing.
    return { code: error.reason, message: error.message, retry: error.reason !== 'REJECTED', ...(error.retryAfterMs !== undefined ? { retryAfterMs: error.retryAfterMs } : {}) };
  }
  if (error instanceof TemplateError) {
    // A source that could not be read may be back later; a template that does not render will not be.
    return { code: error.code === 'SOURCE_UNAVAILABLE' ? 'TEMPLATE_UNAVAILABLE' : 'TEMPLATE', message: error.message, retry: error.code === 'SOURCE_UNAVAILABLE' };
  }
  return { code: 'INTERNAL', message: error instanceof Error ? error.message : String(error), retry: true };
}
