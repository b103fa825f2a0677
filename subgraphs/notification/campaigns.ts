import { randomUUID } from 'node:crypto';
import { LockMode, type EntityManager, type MikroORM } from '@mikro-orm/postgresql';
import { badInput, userError } from '../../platform/errors.js';
import type { NewEvent } from '../../platform/events/envelope.js';
import { recordEvents } from '../../platform/events/outbox.js';
import { isUuid } from '../../platform/formats.js';
import type { Logger } from '../../platform/log.js';
import type { SubgraphContext } from '../../platform/subgraph/context.js';
import type { Links } from './causes.js';
import { queueDeliveries, type DeliveryRequest } from './deliveries.js';
import { Campaign, Delivery, Recipient, type CampaignAudience } from './notification.entities.js';
import { CATEGORIES, CHANNELS, type Category, type Channel } from './preferences.rules.js';
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
  logger: Logger;
  onEventsCommitted(): void;
  /** A batch queued deliveries: the delivery worker can start on them. */
  onDeliveriesQueued(): void;
}

/**
 * Sends campaigns in the background, one batch of users per transaction: the batch's deliveries
 * (honouring each person's preferences; MARKETING is opt-in), the campaign's cursor and
 * progress commit together, so a crash resumes after the last batch and a batch run twice
 * queues nothing twice (each delivery's key is the campaign, channel and user).
 */
export class CampaignRunner {
  private readonly log: Logger;
  private running = false;
  private timer: NodeJS.Timeout | null = null;
  private working: Promise<void> | null = null;
  private wakeAgain = false;

  constructor(private readonly options: CampaignRunnerOptions) {
    this.log = options.logger.child({ worker: 'notification-campaigns' });
  }

  start(): void {
    this.running = true;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    await this.working;
  }

  wake(): void {
    if (!this.running) return;
    if (this.working) this.wakeAgain = true;
    else this.schedule(0);
  }

  private schedule(ms: number) {
    if (!this.running) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.working = this.runDue()
        .catch((error: unknown) => this.log.warn({ err: error }, 'campaign run interrupted'))
        .finally(() => {
          this.working = null;
          const again = this.wakeAgain;
          this.wakeAgain = false;
          this.schedule(again ? 0 : this.options.pollMs);
        });
    }, ms);
    this.timer.unref();
  }

  private async runDue(): Promise<void> {
    while (this.running) {
      const id = await this.claim();
      if (!id) return;
      await this.run(id);
    }
  }

  /** A queued campaign, or a running one whose runner's lease ran out. */
  private async claim(): Promise<string | null> {
    const now = new Date();
    return this.options.orm.em.fork().transactional(async (em) => {
      const [campaign] = await em.find(
        Campaign,
        { status: { $in: ['QUEUED', 'RUNNING'] }, $or: [{ leaseUntil: null }, { leaseUntil: { $lt: now } }] },
        { orderBy: { createdAt: 'asc' }, limit: 1, lockMode: LockMode.PESSIMISTIC_PARTIAL_WRITE },
      );
      if (!campaign) return null;
      campaign.status = 'RUNNING';
      campaign.startedAt ??= now;
      campaign.leaseUntil = new Date(now.getTime() + this.options.leaseMs);
      return campaign.id;
    });
  }

  private async run(id: string): Promise<void> {
    const log = this.log.child({ campaignId: id });
    for (;;) {
      if (!this.running) return; // the lease runs out; the next runner goes on from the cursor
      let done: boolean;
      try {
        done = await this.batch(id, log);
      } catch (error) {
        log.error({ err: error }, 'campaign batch failed; it is retried when the lease runs out');
        return;
      }
      if (done) return;
    }
  }

  /** One batch; true when the campaign is finished. */
  private async batch(id: string, log: Logger): Promise<boolean> {
    let emitted = 0;
    let queued = 0;
    const finished = await this.options.orm.em.fork().transactional(async (em) => {
      const campaign = await em.findOne(Campaign, { id }, { lockMode: LockMode.PESSIMISTIC_WRITE });
      if (!campaign || campaign.status !== 'RUNNING') return true;
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
      campaign.leaseUntil = new Date(Date.now() + this.options.leaseMs);
      const last = users.length < this.options.batchSize;
      if (last) {
        campaign.status = 'COMPLETED';
        campaign.completedAt = new Date();
        campaign.leaseUntil = null;
      }
      log.info({ processed: campaign.processedUsers, audienceSize: campaign.audienceSize, recipients: campaign.recipients, declined: result.declined, done: last }, 'campaign batch');
      return last;
    });
    if (emitted) this.options.onEventsCommitted();
    if (queued) this.options.onDeliveriesQueued();
    return finished;
  }
}
