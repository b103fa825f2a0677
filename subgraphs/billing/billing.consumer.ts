import { LockMode, raw, type EntityManager } from '@mikro-orm/postgresql';
import type { ConsumerDefinition, EventHandlerContext } from '../../platform/events/consumer.types.js';
import type { EventEnvelope } from '../../platform/events/envelope.js';
import { Membership, Plan, Usage } from './billing.entities.js';
import * as events from './billing.events.js';
import * as rules from './billing.rules.js';
import { ensureMembership } from './billing.service.js';

/**
 * How billing reacts to accounts: they get the FREE plan, and lose it with the account (billing's
 * step of the deletion saga, asked again by user.erasure.requested if it did not report).
 *
 * Times come from the events, never the clock, so handling an event late (a backlog, a
 * redelivery) has the effect it would have had on time. No `reset`: memberships are not a read
 * model the stream can rebuild (changePlan writes them too).
 */
export const membershipConsumer: ConsumerDefinition = {
  name: 'billing',
  types: [events.USER_REGISTERED, events.USER_DELETED, events.USER_ERASURE_REQUESTED],
  async handle(event, ctx) {
    if (event.type === events.USER_REGISTERED) {
      const { userId } = event.payload as events.UserLifecycle;
      await ensureMembership(ctx.em, (created) => ctx.emit(created), userId, new Date(event.timestamp));
      return;
    }
    const erasure = events.erasureAsked(event);
    if (!erasure) return;
    // Idempotent: a membership cancelled already stays as it is, and the report goes again.
    await cancelMembership(ctx, erasure.userId, erasure.at);
    ctx.emit(events.erasureCompleted(erasure.userId));
  },
};

/**
 * Counts stories, voice clones, invitations and generated videos per user and calendar month:
 * a read model of the stream, so `npm run replay -- billing-usage` rebuilds it (announcing
 * nothing again).
 */
export const usageConsumer: ConsumerDefinition = {
  name: 'billing-usage',
  types: [events.STORY_CREATED, events.VOICE_CLONED, events.COLLABORATION_INVITATION_SENT, events.VIDEO_GENERATION_COMPLETED],
  handle: (event, ctx) => countUsage(ctx, event, new Date(event.timestamp)),
  async reset(em) {
    await em.nativeDelete(Usage, {});
  },
};

/**
 * The account is gone: so is what its plan allowed, from the month it ended in. A user billing
 * never gave a membership gets a cancelled one, so that nothing (a late user.registered, a
 * changePlan with a token still valid) can give them an active one afterwards.
 */
async function cancelMembership(ctx: EventHandlerContext, userId: string, at: Date): Promise<void> {
  const period = rules.billingPeriod(at);
  const cancelled = { status: 'CANCELLED' as const, cancelledAt: at, updatedAt: at, currentPeriodStart: period.start, currentPeriodEnd: period.end };
  let membership = await ctx.em.findOne(Membership, { userId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
  if (!membership) {
    const placeholder = await ctx.em
      .createQueryBuilder(Membership)
      .insert({ userId, tier: rules.FREE_TIER, createdAt: at, version: 1, ...cancelled })
      .onConflict('userId')
      .ignore()
      .execute('run');
    if (placeholder.affectedRows) return;
    // A membership committed meanwhile (a first changePlan with a token still valid): it is
    // cancelled like any other.
    membership = await ctx.em.findOneOrFail(Membership, { userId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
  }
  if (membership.status === 'CANCELLED') return;
  Object.assign(membership, cancelled, { version: membership.version + 1 });
  const payload: events.SubscriptionCancelled = { userId, membershipVersion: membership.version, tier: membership.tier, entitlements: rules.cancelledEntitlements(membership.tier) };
  ctx.emit({ type: events.SUBSCRIPTION_CANCELLED, userId, payload });
}

/**
 * Adds one to the metric in the month of the event's timestamp (so rebuilding from the stream
 * gives the same counts), and announces the moment a monthly limit of the user's plan is reached.
 */
async function countUsage(ctx: EventHandlerContext, event: EventEnvelope, at: Date): Promise<void> {
  const metric = rules.usageMetricOf(event.type);
  if (!metric) throw new Error(`billing does not consume ${event.type}`);
  const { userId } = event;
  if (!userId) {
    ctx.log.warn({ eventId: event.id, type: event.type }, 'usage event without a user: not counted');
    return;
  }
  const periodStart = rules.billingPeriod(at).start;
  const { count, announced } = await incrementUsage(ctx.em, userId, periodStart, metric);
  if (!rules.isMonthlyMetric(metric)) return;
  const announcedIn = ANNOUNCED_IN[metric];
  const membership = await ctx.em.findOne(Membership, { userId });
  if (!membership || membership.status === 'CANCELLED') return;
  const plan = await ctx.em.findOneOrFail(Plan, { tier: membership.tier });
  const limit = rules.limitReached(plan, metric, count, announced[announcedIn]);
  if (limit === null) return;
  // Claimed with a condition, so two events racing past the limit announce it once.
  const claimed = await ctx.em.nativeUpdate(
    Usage,
    { userId, periodStart, $or: [{ [announcedIn]: null }, { [announcedIn]: { $lt: limit } }] },
    { [announcedIn]: limit },
  );
  if (!claimed) return;
  const payload: events.UsageLimitReached = { userId, metric, limit, count, periodStart: periodStart.toISOString(), tier: plan.tier };
  ctx.emit({ type: events.USAGE_LIMIT_REACHED, userId, payload });
}

/** Where the period records the highest limit it announced, one column per metric. */
const ANNOUNCED_IN = {
  storiesCreated: 'storiesLimitReached',
  videosGenerated: 'videosLimitReached',
} as const satisfies Record<rules.MonthlyMetric, keyof Usage>;

type Announced = Pick<Usage, (typeof ANNOUNCED_IN)[rules.MonthlyMetric]>;

/**
 * One statement, so concurrent events of one user and month never lose a count. Returns the
 * new count and the limits the period has announced so far.
 */
async function incrementUsage(em: EntityManager, userId: string, periodStart: Date, metric: rules.UsageMetric): Promise<{ count: number; announced: Announced }> {
  const column = em.getMetadata().get<Usage>(Usage.name).properties[metric].fieldNames[0];
  const row = await em
    .createQueryBuilder(Usage)
    .insert({ userId, periodStart, storiesCreated: 0, voiceClones: 0, collaboratorsInvited: 0, videosGenerated: 0, [metric]: 1 })
    .onConflict(['userId', 'periodStart'])
    .merge({ [metric]: raw(`"usage"."${column}" + 1`) })
    .returning([metric, ...Object.values(ANNOUNCED_IN)])
    .execute<Pick<Usage, rules.UsageMetric> & Announced>('get');
  return { count: row[metric], announced: row };
}
