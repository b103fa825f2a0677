import { randomUUID } from 'node:crypto';
import { LockMode, type EntityManager, type MikroORM } from '@mikro-orm/postgresql';
import { badInput, userError } from '../../platform/errors.js';
import type { NewEvent } from '../../platform/events/envelope.js';
import { recordEvents } from '../../platform/events/outbox.js';
import { isUuid } from '../../platform/formats.js';
import { PollLoop } from '../../platform/jobs/poll-loop.js';
import type { Logger } from '../../platform/log.js';
import type { SubgraphContext } from '../../platform/subgraph/context.js';
import type { Links } from './causes.js';
import { queueDeliveries, type DeliveryRequest } from './deliveries.js';
import { Campaign, Delivery, Recipient, type CampaignAudience } from './notification.entities.js';
import { CATEGORIES, CHANNELS, REQUIRED, type Category, type Channel } from './preferences.rules.js';
import { requireAdmin } from './templates.service.js';
import { resolveTemplate } from './templates/resolve.js';
import type { TemplateStore } from './templates/template.js';

export interface CampaignInput {
  name: string;
  templateKey: string;
  category: Category;
  audience: CampaignAudience;
  tier?: string | null;
}

const TIERS = ['FREE', 'SILVER', 'GOLD', 'PLATINUM'];

interface Templates {
  store(em: EntityManager): TemplateStore;
  defaults: TemplateStore;
}

/** The audience of a campaign, still to be handled after `cursor` (user ids in order). */
const audienceOf = (campaign: Pick<Campaign, 'audience' | 'tier'>) => ({ deletedAt: null, ...(campaign.audience === 'PLAN_TIER' ? { tier: campaign.tier! } : {}) });

export class CampaignsService {
  constructor(
    private readonly templates: Templates,
    private readonly wake: () => void,
  ) {}

  /** Queues the campaign; the runner sends it in batches. */
  async send(ctx: SubgraphContext, input: CampaignInput): Promise<{ campaign: Campaign }> {
    requireAdmin(ctx);
    const name = input.name.trim();
    if (name.length < 1 || name.length > 120) throw userError('INVALID_INPUT', 'A campaign name is 1 to 120 characters', 'name');
    if (!CATEGORIES.includes(input.category)) throw badInput(`Unknown category ${input.category}`, 'category');
    // Nobody can opt out of ACCOUNT or BILLING: a campaign in them would reach everyone whatever they chose.
    if (REQUIRED.has(input.category)) {
      throw userError('INVALID_INPUT', `A campaign cannot be sent as ${input.category}: people cannot opt out of it (use MARKETING or a category they can turn off)`, 'category');
    }
    if (input.audience === 'PLAN_TIER' && !TIERS.includes(input.tier ?? '')) throw userError('INVALID_INPUT', `PLAN_TIER needs a tier: ${TIERS.join(', ')}`, 'tier');
    if (input.audience === 'ALL_USERS' && input.tier) throw userError('INVALID_INPUT', 'ALL_USERS takes no tier', 'tier');
    const channels = await channelsWithTemplate(this.templates, ctx.em, input.templateKey, 'en');
    if (channels.length === 0) throw userError('TEMPLATE_NOT_FOUND', `No template ${input.templateKey} in any channel (upsertNotificationTemplate first)`, 'templateKey');
    const now = new Date();
    const campaign = await ctx.transaction(async ({ em }) => {
      const audienceSize = await em.count(Recipient, audienceOf({ audience: input.audience, tier: input.tier ?? null }));
      return em.create(Campaign, {
        id: randomUUID(),
        name,
        templateKey: input.templateKey,
        category: input.category,
        audience: input.audience,
        tier: input.audience === 'PLAN_TIER' ? input.tier! : null,
        status: 'QUEUED',
        audienceSize,
        processedUsers: 0,
        recipients: 0,
        cursor: null,
        leaseUntil: null,
        error: null,
        createdBy: ctx.caller.userId!,
        createdAt: now,
        startedAt: null,
        completedAt: null,
      });
    });
    ctx.log.info({ campaignId: campaign.id, audience: campaign.audience, tier: campaign.tier, audienceSize: campaign.audienceSize }, 'campaign queued');
    this.wake();
    return { campaign };
  }

  async byId(ctx: SubgraphContext, id: string): Promise<Campaign | null> {
    requireAdmin(ctx);
    if (!isUuid(id)) return null;
    return ctx.em.findOne(Campaign, { id });
  }

  /** How many of the campaign's deliveries a provider accepted so far. */
  async sent(ctx: SubgraphContext, campaign: Campaign): Promise<number> {
    return ctx.em.count(Delivery, { campaignId: campaign.id, status: { $in: ['SENT', 'DELIVERED', 'OPENED', 'CLICKED', 'BOUNCED'] } });
  }
}

async function channelsWithTemplate(templates: Templates, em: EntityManager, key: string, locale: string): Promise<Channel[]> {
  const found: Channel[] = [];
  for (const channel of CHANNELS) if (await resolveTemplate(templates.store(em), templates.defaults, key, channel, locale)) found.push(channel);
  return found;
}

export interface CampaignRunnerOptions {
  orm: MikroORM;
  templates: Templates;
  links: Links;
  batchSize: number;
  pollMs: number;
  leaseMs: number;
  /** Consecutive failed batches after which the campaign is FAILED (default 5). */
  maxBatchFailures?: number;
  logger: Logger;
  onEventsCommitted(): void;
  /** A batch queued deliveries: the delivery worker can start on them. */
  onDeliveriesQueued(): void;
}

/** How a batch ended: the campaign is finished, goes on, or another runner holds it now. */
type BatchOutcome = { done: true } | { done: false; lease: Date } | { lost: true };

/**
 * Sends campaigns in the background, one batch of users per transaction: the batch's deliveries
 * (honouring each person's preferences; MARKETING is opt-in), the campaign's cursor and
 * progress commit together, so a crash resumes after the last batch and a batch run twice
 * queues nothing twice (each delivery's key is the campaign, channel and user).
 *
 * A runner holds a campaign under a lease: the `lease_until` it wrote when it claimed the
 * campaign is its token. Each batch locks the campaign row and goes on only while `lease_until`
 * is still that value (then renews it); a runner whose lease ran out and was claimed by another
 * finds a different value and lets go, so two runners never interleave batches.
 *
 * A batch that fails records its error on the campaign and is retried when the lease runs out
 * (by whichever runner claims it then); after `maxBatchFailures` consecutive failures in one
 * runner the campaign is FAILED with the last error. The count is this runner's: with several
 * replicas a campaign fails after at most replicas × (N − 1) + 1 failed batches.
 */
export class CampaignRunner {
  private readonly log: Logger;
  private readonly maxBatchFailures: number;
  private readonly loop: PollLoop;
  /** Consecutive failed batches per campaign, in this runner. */
  private readonly failures = new Map<string, number>();

  constructor(private readonly options: CampaignRunnerOptions) {
    this.log = options.logger.child({ worker: 'notification-campaigns' });
    this.maxBatchFailures = Math.max(1, options.maxBatchFailures ?? 5);
    this.loop = new PollLoop(() => this.runDue(), { everyMs: options.pollMs, onError: (error) => this.log.warn({ err: error }, 'campaign run interrupted') });
  }

  private get running(): boolean {
    return this.loop.running;
  }

  start(): void {
    this.loop.start();
  }

  /** Finishes the batch in progress and lets go of its campaign, so another runner resumes it at once. */
  async stop(): Promise<void> {
    await this.loop.stop();
  }

  wake(): void {
    this.loop.wake();
  }

  private async runDue(): Promise<void> {
    while (this.running) {
      const claimed = await this.claim();
      if (!claimed) return;
      await this.run(claimed.id, claimed.lease);
    }
  }

  /**
   * A queued campaign, or a running one whose runner's lease ran out, with the lease written
   * (this runner's token). SKIP LOCKED: a campaign whose batch is in progress (its row locked)
   * is passed over, and two runners claiming at once take different campaigns.
   */
  private async claim(): Promise<{ id: string; lease: Date } | null> {
    const now = new Date();
    return this.options.orm.em.fork().transactional(async (em) => {
      const [campaign] = await em.find(
        Campaign,
        { status: { $in: ['QUEUED', 'RUNNING'] }, $or: [{ leaseUntil: null }, { leaseUntil: { $lt: now } }] },
        { orderBy: { createdAt: 'asc' }, limit: 1, lockMode: LockMode.PESSIMISTIC_PARTIAL_WRITE },
      );
      if (!campaign) return null;
      // Later than the lease it replaces, so the runner that held it finds a different token.
      const lease = new Date(Math.max(now.getTime() + this.options.leaseMs, (campaign.leaseUntil?.getTime() ?? 0) + 1));
      campaign.status = 'RUNNING';
      campaign.startedAt ??= now;
      campaign.leaseUntil = lease;
      return { id: campaign.id, lease };
    });
  }

  private async run(id: string, claimed: Date): Promise<void> {
    const log = this.log.child({ campaignId: id });
    let lease = claimed;
    for (;;) {
      if (!this.running) {
        await this.release(id, lease, log);
        return;
      }
      let outcome: BatchOutcome;
      try {
        outcome = await this.batch(id, lease, log);
      } catch (error) {
        await this.failed(id, lease, error, log);
        return;
      }
      if ('lost' in outcome) {
        log.warn('campaign lease lost to another runner; letting go');
        this.failures.delete(id);
        return;
      }
      this.failures.delete(id);
      if (outcome.done) return;
      lease = outcome.lease;
    }
  }

  /** Lets go of a campaign this runner still holds (stopping): the next runner claims it without waiting for the lease. */
  private async release(id: string, lease: Date, log: Logger): Promise<void> {
    try {
      await this.options.orm.em.fork().nativeUpdate(Campaign, { id, status: 'RUNNING', leaseUntil: lease }, { leaseUntil: null });
    } catch (error) {
      log.warn({ err: error }, 'could not release the campaign lease; it runs out by itself');
    }
  }

  /** Records a failed batch: its error, and FAILED after too many in a row. Otherwise it is retried when the lease runs out. */
  private async failed(id: string, lease: Date, error: unknown, log: Logger): Promise<void> {
    const count = (this.failures.get(id) ?? 0) + 1;
    const message = (error instanceof Error ? error.message : String(error)).slice(0, 2000) || 'unknown error';
    const giveUp = count >= this.maxBatchFailures;
    const recorded = `batch failed ${count} time${count === 1 ? '' : 's'} in a row: ${message}`;
    try {
      const updated = await this.options.orm.em
        .fork()
        .nativeUpdate(Campaign, { id, status: 'RUNNING', leaseUntil: lease }, giveUp ? { status: 'FAILED', error: recorded, leaseUntil: null } : { error: recorded });
      if (updated === 0) {
        // Another runner holds it now: its own count decides.
        this.failures.delete(id);
        log.warn({ err: error }, 'campaign batch failed after the lease was lost');
        return;
      }
    } catch (recordError) {
      // Kept counted: the next failure (after the lease runs out) tries to record it again.
      this.failures.set(id, count);
      log.error({ err: error, recordErr: recordError, failures: count }, 'campaign batch failed, and recording it failed too');
      return;
    }
    if (giveUp) {
      this.failures.delete(id);
      log.error({ err: error, failures: count }, 'campaign FAILED: its batch failed too many times in a row');
    } else {
      this.failures.set(id, count);
      log.warn({ err: error, failures: count, maxFailures: this.maxBatchFailures }, 'campaign batch failed; it is retried when the lease runs out');
    }
  }

  /** One batch, while this runner still holds the campaign's lease. */
  private async batch(id: string, lease: Date, log: Logger): Promise<BatchOutcome> {
    let emitted = 0;
    let queued = 0;
    const outcome = await this.options.orm.em.fork().transactional(async (em): Promise<BatchOutcome> => {
      const campaign = await em.findOne(Campaign, { id }, { lockMode: LockMode.PESSIMISTIC_WRITE });
      if (!campaign || campaign.status !== 'RUNNING') return { done: true };
      if (campaign.leaseUntil?.getTime() !== lease.getTime()) return { lost: true };
      const users = await em.find(
        Recipient,
        { ...audienceOf(campaign), ...(campaign.cursor ? { userId: { $gt: campaign.cursor } } : {}) },
        { orderBy: { userId: 'asc' }, limit: this.options.batchSize },
      );
      const requests: DeliveryRequest[] = [];
      const channelsFor = new Map<string, Channel[]>();
      for (const user of users) {
        let channels = channelsFor.get(user.locale);
        if (!channels) channelsFor.set(user.locale, (channels = await channelsWithTemplate(this.options.templates, em, campaign.templateKey, user.locale)));
        for (const channel of channels) {
          const address = channel === 'EMAIL' ? user.email : user.phone;
          if (!address) continue;
          requests.push({
            dedupeKey: `campaign:${campaign.id}:${channel}:${user.userId}`,
            cause: 'campaign',
            eventId: null,
            campaignId: campaign.id,
            userId: user.userId,
            channel,
            category: campaign.category,
            templateKey: campaign.templateKey,
            locale: user.locale,
            address,
            variables: { displayName: user.displayName, appLink: this.options.links.app(), preferencesLink: `${this.options.links.app().replace(/\/+$/, '')}/settings/notifications` },
            correlationId: null,
          });
        }
      }
      const pending: NewEvent[] = [];
      const result = await queueDeliveries(em, (e) => pending.push(e), requests);
      await recordEvents(em, { serviceName: 'notification', correlationId: null }, pending);
      emitted = pending.length;
      queued = result.created;
      campaign.processedUsers += users.length;
      campaign.recipients += result.created;
      campaign.cursor = users.at(-1)?.userId ?? campaign.cursor;
      campaign.error = null;
      const renewed = new Date(Math.max(Date.now() + this.options.leaseMs, lease.getTime()));
      campaign.leaseUntil = renewed;
      const last = users.length < this.options.batchSize;
      if (last) {
        campaign.status = 'COMPLETED';
        campaign.completedAt = new Date();
        campaign.leaseUntil = null;
      }
      log.info({ processed: campaign.processedUsers, audienceSize: campaign.audienceSize, recipients: campaign.recipients, declined: result.declined, done: last }, 'campaign batch');
      return last ? { done: true } : { done: false, lease: renewed };
    });
    if (emitted) this.options.onEventsCommitted();
    if (queued) this.options.onDeliveriesQueued();
    return outcome;
  }
}
