import { LockMode, raw, type EntityManager } from '@mikro-orm/postgresql';
import type { ConsumerDefinition, EventHandlerContext } from '../../platform/events/consumer.types.js';
import type { EventEnvelope } from '../../platform/events/envelope.js';
import { Membership, Plan, Usage } from './billing.entities.js';
import * as events from './billing.events.js';
import * as rules from './billing.rules.js';
import { ensureMembership } from './billing.service.js';

/**
 * How billing reacts to the rest of the platform: accounts get the FREE plan and lose it with
 * the account; stories, voice clones and invitations are counted per calendar month.
 *
 * Times come from the events, never the clock, so handling an event late (a backlog, a
 * redelivery) has the effect it would have had on time. No `reset`: memberships are not a read
 * model the stream can rebuild (changePlan writes them too).
 */
export const billingConsumer: ConsumerDefinition = {
  name: 'billing',
  types: [events.USER_REGISTERED, events.USER_DELETED, events.STORY_CREATED, events.VOICE_CLONED, events.COLLABORATION_INVITATION_SENT],
  async handle(event, ctx) {
    const at = new Date(event.timestamp);
    if (event.type === events.USER_REGISTERED) {
      await ensureMembership(ctx.em, (created) => ctx.emit(created), (event.payload as events.UserLifecycle).userId, at);
    } else if (event.type === events.USER_DELETED) {
      await cancelMembership(ctx, (event.payload as events.UserLifecycle).userId, at);
    } else {
      await countUsage(ctx, event, at);
    }
  },
};

/** The account is gone: so is what its plan allowed. Nothing to do if it was never a member or already cancelled. */
async function cancelMembership(ctx: EventHandlerContext, userId: string, at: Date): Promise<void> {
  const membership = await ctx.em.findOne(Membership, { userId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
  if (!membership || membership.status === 'CANCELLED') return;
  Object.assign(membership, { status: 'CANCELLED', cancelledAt: at, updatedAt: at });
  const payload: events.SubscriptionCancelled = { userId, tier: membership.tier, entitlements: rules.cancelledEntitlements(membership.tier) };
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
  const count = await incrementUsage(ctx.em, userId, periodStart, metric);
  const membership = await ctx.em.findOne(Membership, { userId });
  if (!membership || membership.status === 'CANCELLED') return;
  const plan = await ctx.em.findOneOrFail(Plan, { tier: membership.tier });
  const limit = rules.limitReached(plan, metric, count);
  if (limit === null) return;
  const payload: events.UsageLimitReached = { userId, metric, limit, count, periodStart: periodStart.toISOString(), tier: plan.tier };
  ctx.emit({ type: events.USAGE_LIMIT_REACHED, userId, payload });
}

/** One statement, so concurrent events of one user and month never lose a count. Returns the new count. */
async function incrementUsage(em: EntityManager, userId: string, periodStart: Date, metric: rules.UsageMetric): Promise<number> {
  const column = em.getMetadata().get<Usage>(Usage.name).properties[metric].fieldNames[0];
  const row = await em
    .createQueryBuilder(Usage)
    .insert({ userId, periodStart, storiesCreated: 0, voiceClones: 0, collaboratorsInvited: 0, [metric]: 1 })
    .onConflict(['userId', 'periodStart'])
    .merge({ [metric]: raw(`"usage"."${column}" + 1`) })
    .returning([metric])
    .execute<Pick<Usage, rules.UsageMetric>>('get');
  return row[metric];
}
