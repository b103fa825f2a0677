import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import pg from 'pg';
import { endWithin } from '../../platform/db/session.js';
import { tableOf } from '../../platform/db/tables.js';
import type { NewEvent } from '../../platform/events/envelope.js';
import { recordEvents } from '../../platform/events/outbox.js';
import { PollLoop } from '../../platform/jobs/poll-loop.js';
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
  /**
   * Messages one address may get per channel in an hour, counted from the delivery table (so
   * the limit holds across replicas and restarts); unset, no limit. A delivery over it waits,
   * without using up a round, until the oldest of those sends is an hour old.
   */
  rateLimitPerHour?: number;
  logger: Logger;
  onEventsCommitted(): void;
  now?: () => Date;
}

/** The wake-up connection's name in pg_stat_activity. */
export const LISTEN_APPLICATION_NAME = 'storyloom-notification-listen';

const HOUR_MS = 3_600_000;
/** Statuses of a delivery that reached a provider: each counts against its recipient's limit. */
const SENT_STATUSES = ['SENT', 'DELIVERED', 'OPENED', 'CLICKED', 'BOUNCED'] as const;
/** Waits before reconnecting the wake-up connection: doubling from the first, up to the last. */
const RECONNECT_FIRST_MS = 500;
const RECONNECT_MAX_MS = 30_000;

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
 * again later with backoff, up to maxAttempts rounds. A delivery over its recipient's limit
 * (rateLimitPerHour) waits without using up a round: only what a provider answered counts.
 */
export class DeliveryWorker {
  private readonly log: Logger;
  private readonly now: () => Date;
  private inFlight = 0;
  private readonly loop: PollLoop;
  private listener: pg.Client | null = null;
  /** Bumped by start() and stop(): a wake-up connection of an older run closes itself. */
  private generation = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private reconnectFailures = 0;
  private readonly sends = new Set<Promise<void>>();
  private aborts = new AbortController();

  constructor(private readonly options: DeliveryWorkerOptions) {
    this.log = options.logger.child({ worker: 'notification-delivery' });
    this.now = options.now ?? (() => new Date());
    this.loop = new PollLoop(() => this.tick(), { everyMs: options.pollMs, onError: (error) => this.log.warn({ err: error }, 'could not claim deliveries') });
  }

  private get running(): boolean {
    return this.loop.running;
  }

  async start(): Promise<void> {
    this.generation++;
    this.reconnectFailures = 0;
    if (this.aborts.signal.aborted) this.aborts = new AbortController();
    this.loop.start();
    await this.listen(this.generation);
  }

  async stop(): Promise<void> {
    this.generation++;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    await this.loop.stop();
    // Sends under way are cut short and go back to the queue for the next worker.
    this.aborts.abort(new Error('the delivery worker is stopping'));
    await Promise.allSettled([...this.sends]);
    const listener = this.listener;
    this.listener = null;
    if (listener) await endWithin(listener, 2_000);
  }

  /** Looks for due deliveries now (tests, and after a commit in this process). */
  wake(): void {
    this.loop.wake();
  }

  /**
   * Opens the wake-up connection (LISTEN). Lost (an error, or an end nobody asked for) while this
   * run lasts, it is opened again after a wait; the poll covers the gap. A connection that opens
   * after its run ended (stop() while connecting) is closed at once.
   */
  private async listen(generation: number): Promise<void> {
    const current = () => this.running && this.generation === generation;
    const em = this.options.orm.em.fork();
    const client = new pg.Client({
      connectionString: this.options.orm.config.get('clientUrl'),
      application_name: LISTEN_APPLICATION_NAME,
      keepAlive: true,
      connectionTimeoutMillis: 10_000,
    });
    let closed = false;
    const close = async () => {
      closed = true;
      if (this.listener === client) this.listener = null;
      await endWithin(client, 2_000);
    };
    const lost = (error?: Error) => {
      if (closed) return;
      void close();
      if (!current()) return;
      this.log.warn({ err: error }, 'lost the wake-up connection; polling until it is back');
      this.reconnectLater(generation);
    };
    client.on('error', lost);
    client.on('end', () => lost());
    client.on('notification', () => this.wake());
    try {
      await client.connect();
      await client.query(`listen "${wakeChannel(em)}"`);
    } catch (error) {
      if (closed) return; // told by 'error' or 'end' already
      await close();
      if (!current()) return;
      this.log.warn({ err: error }, 'could not listen for new deliveries; polling');
      this.reconnectLater(generation);
      return;
    }
    if (closed) return;
    if (!current()) {
      await close();
      return;
    }
    this.listener = client;
    if (this.reconnectFailures > 0) {
      // Back after a gap: a notification sent meanwhile was lost.
      this.reconnectFailures = 0;
      this.wake();
    }
  }

  private reconnectLater(generation: number) {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const wait = Math.min(RECONNECT_MAX_MS, RECONNECT_FIRST_MS * 2 ** this.reconnectFailures);
    this.reconnectFailures++;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.running && this.generation === generation) void this.listen(generation).catch(() => {});
    }, wait);
    this.reconnectTimer.unref();
  }

  private async tick(): Promise<void> {
    const free = this.options.concurrency - this.inFlight;
    if (free <= 0 || !this.running) return;
    const claimed = await this.claim(free);
    for (const delivery of claimed) {
      this.inFlight++;
      const send = this.deliver(delivery)
        // deliver() settles every provider and template failure itself: what reaches here is the
        // database going away (Ctrl-C reaches the embedded PostgreSQL too). The lease brings the row back.
        .catch((error: unknown) => this.log.warn({ err: error, deliveryId: delivery.id }, 'could not record the delivery; it is tried again when its lease ends'))
        .finally(() => {
          this.inFlight--;
          this.sends.delete(send);
          this.wake();
        });
      this.sends.add(send);
    }
    // A full claim may have left more behind.
    if (claimed.length === free) this.wake();
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
    const limit = this.options.rateLimitPerHour;
    if (limit !== undefined) {
      const waitUntil = await this.recipientLimitedUntil(em, delivery, limit);
      if (waitUntil) {
        log.info({ limit, retryAt: waitUntil.toISOString() }, 'delivery held back: its recipient reached the hourly limit');
        await this.holdBack(delivery, waitUntil, limit);
        return;
      }
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
      const outcome = redacted(outcomeOf(error), delivery.address);
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

  /**
   * When the delivery may go to its recipient, or null for now. Counted against the limit: the
   * address's sends in the last hour (on this channel), and its deliveries other workers, or
   * this one, are sending at this moment that were claimed before this one (so of two claimed
   * together, one goes). Null when under the limit; else the first time it may no longer be:
   * when enough of those sends are an hour old, or leases end.
   */
  private async recipientLimitedUntil(em: EntityManager, delivery: Delivery, limit: number): Promise<Date | null> {
    const now = this.now();
    const rows: { free_at: Date | string }[] = await em.getConnection().execute(
      `select case when "status" = 'QUEUED' then "lease_until" else "updated_at" + interval '1 hour' end as "free_at"
       from ${tableOf(em, 'delivery')}
       where "channel" = ? and "address" = ? and "id" <> ?
         and (("status" in (${SENT_STATUSES.map(() => '?').join(', ')}) and "updated_at" > ?)
           or ("status" = 'QUEUED' and "lease_until" > ? and ("lease_until", "id") < (?::timestamptz, ?::uuid)))
       order by "free_at"`,
      [delivery.channel, delivery.address, delivery.id, ...SENT_STATUSES, new Date(now.getTime() - HOUR_MS), now, delivery.leaseUntil, delivery.id],
      'all',
    );
    if (rows.length < limit) return null;
    const at = new Date(rows[rows.length - limit]!.free_at);
    return at.getTime() > now.getTime() ? at : new Date(now.getTime() + 1);
  }

  /** Puts a delivery over its recipient's limit back until `at`: not a round, so its attempt is not counted. */
  private holdBack(delivery: Delivery, at: Date, limit: number): Promise<void> {
    return this.putBack(delivery, { nextAttemptAt: at, attempts: delivery.attempts - 1, errorCode: 'RATE_LIMITED', error: `Held back: at most ${limit} messages an hour to one recipient` });
  }

  private requeue(delivery: Delivery, at: Date, outcome: Outcome): Promise<void> {
    return this.putBack(delivery, { nextAttemptAt: at, errorCode: outcome.code, error: outcome.message });
  }

  /** Gives an interrupted claim back: its attempt is not counted, and any worker may take it at once. */
  private release(delivery: Delivery): Promise<void> {
    return this.putBack(delivery, { attempts: delivery.attempts - 1 });
  }

  /** Returns a claimed delivery to the queue, only while the lease is still this worker's: once it ran out, another worker may hold the row. */
  private async putBack(delivery: Delivery, changes: Partial<Pick<Delivery, 'nextAttemptAt' | 'attempts' | 'errorCode' | 'error'>>): Promise<void> {
    await this.options.orm.em
      .fork()
      .nativeUpdate(Delivery, { id: delivery.id, status: 'QUEUED', leaseUntil: delivery.leaseUntil }, { ...changes, leaseUntil: null, updatedAt: this.now() });
  }

  /**
   * Records how the send ended, with its event, in one transaction, only while the lease is
   * still this worker's: once it ran out, another worker may have claimed the row (and finished
   * it), and this late answer must change nothing nor be announced a second time. A webhook may
   * have got here first (a fast provider reports delivery before the send's answer is stored):
   * the status then stays as the webhook left it, only the provider's ids are added, and no
   * event goes out, the webhook's having told the story.
   */
  private async finish(
    delivery: Delivery,
    end: { status: 'SENT' | 'FAILED' | 'SUPPRESSED'; provider?: string | null; providerMessageId?: string; errorCode?: string; error?: string },
  ): Promise<void> {
    const committed = await this.options.orm.em.fork().transactional(async (em) => {
      const table = tableOf(em, 'delivery');
      const held: { status: string }[] = await em
        .getConnection()
        .execute(`select "status" from ${table} where "id" = ? and "lease_until" = ? for update`, [delivery.id, delivery.leaseUntil], 'all', em.getTransactionContext());
      if (held.length === 0) {
        // The lease ran out (another worker has the row), or the row is gone (the account was deleted).
        this.log.warn({ deliveryId: delivery.id, status: end.status }, 'delivery no longer ours when its send ended; left as it is');
        return 0;
      }
      const moves = held[0]!.status === 'QUEUED';
      if (moves) {
        await em.getConnection().execute(
          `update ${table} set
             "status" = ?, "provider" = coalesce(?, "provider"), "provider_message_id" = coalesce(?, "provider_message_id"),
             "error_code" = ?, "error" = ?, "lease_until" = null, "updated_at" = ?
           where "id" = ?`,
          [end.status, end.provider ?? null, end.providerMessageId ?? null, end.errorCode ?? null, end.error ?? null, this.now(), delivery.id],
          'run',
          em.getTransactionContext(),
        );
      } else {
        await em.getConnection().execute(
          `update ${table} set "provider" = coalesce("provider", ?), "provider_message_id" = coalesce("provider_message_id", ?), "lease_until" = null where "id" = ?`,
          [end.provider ?? null, end.providerMessageId ?? null, delivery.id],
          'run',
          em.getTransactionContext(),
        );
      }
      if (!moves) return 0;
      const pending: NewEvent[] = [];
      if (end.status === 'SENT') {
        pending.push({ type: events.NOTIFICATION_SENT, userId: delivery.userId, payload: { deliveryId: delivery.id, channel: delivery.channel, provider: end.provider!, attempts: delivery.attempts } satisfies events.NotificationSent });
      } else if (end.status === 'FAILED') {
        // The event's readers get the code and a short story, never the provider's text (it may quote the address).
        pending.push({ type: events.NOTIFICATION_FAILED, userId: delivery.userId, payload: { deliveryId: delivery.id, channel: delivery.channel, provider: null, code: end.errorCode!, error: failureSummary(end.errorCode!) } satisfies events.NotificationFailed });
      }
      await recordEvents(em, { serviceName: 'notification', correlationId: delivery.correlationId }, pending);
      return pending.length;
    });
    if (committed) this.options.onEventsCommitted();
  }
}

/** What notification.failed says for a code: short, and the same for every delivery. */
function failureSummary(code: string): string {
  switch (code) {
    case 'REJECTED':
      return 'Every provider refused the message (REJECTED)';
    case 'TRANSIENT':
      return 'The providers kept failing (TRANSIENT)';
    case 'RATE_LIMITED':
      return 'The providers kept rate limiting us (RATE_LIMITED)';
    case 'TIMEOUT':
      return 'A provider did not answer in time (TIMEOUT)';
    case 'AUTH':
      return 'No provider accepted our credentials (AUTH)';
    case 'TEMPLATE':
      return 'The message template does not render (TEMPLATE)';
    case 'TEMPLATE_UNAVAILABLE':
      return 'The message template could not be read (TEMPLATE_UNAVAILABLE)';
    default:
      return `The message could not be sent (${code})`;
  }
}

/**
 * The outcome with the recipient's address taken out of its text (providers quote it: "x@y is
 * not a valid address"), any case; for a phone number, with or without its +.
 */
function redacted(outcome: Outcome, address: string): Outcome {
  const forms = [address, ...(address.startsWith('+') ? [address.slice(1)] : [])].filter((f) => f.length > 0);
  let message = outcome.message;
  for (const form of forms) message = message.replace(new RegExp(form.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'gi'), '<recipient>');
  return { ...outcome, message };
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
