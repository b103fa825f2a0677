import { userError } from '../../platform/errors.js';
import type { Membership, Plan } from './billing.entities.js';

/**
 * Billing's rules as plain functions of input, state and clock (STYLE 2): no I/O, so each is
 * unit-tested directly and the service and the consumer only load, call, and persist.
 */
export type PlanTier = 'FREE' | 'SILVER' | 'GOLD' | 'PLATINUM';
export type MembershipStatus = 'ACTIVE' | 'CANCELLED' | 'PAST_DUE';
export type InvoiceStatus = 'OPEN' | 'PAID' | 'VOID';
export type UsageMetric = 'storiesCreated' | 'voiceClones' | 'collaboratorsInvited' | 'videosGenerated';
/** The metrics a plan limits per calendar month (usage.limit.reached announces them). */
export type MonthlyMetric = 'storiesCreated' | 'videosGenerated';

/** The tier every account starts on. */
export const FREE_TIER: PlanTier = 'FREE';

/** A billing period: `start` inclusive, `end` exclusive (the first instant of the next period). */
export interface Period {
  start: Date;
  end: Date;
}

/** Periods are UTC calendar months; the one containing `at`. */
export function billingPeriod(at: Date): Period {
  const year = at.getUTCFullYear();
  const month = at.getUTCMonth();
  return { start: new Date(Date.UTC(year, month, 1)), end: new Date(Date.UTC(year, month + 1, 1)) };
}

/**
 * The period a membership is in now. A membership that is not cancelled renews with every
 * calendar month, so it is always in the month containing `now` (the stored period is the one of
 * its last change); a cancelled one stays in the period it ended in.
 */
export function currentPeriod(membership: Pick<Membership, 'status' | 'currentPeriodStart' | 'currentPeriodEnd'>, now: Date): Period {
  if (membership.status === 'CANCELLED') return { start: membership.currentPeriodStart, end: membership.currentPeriodEnd };
  return billingPeriod(now);
}

/** Plans are ordered by rank: a move to a higher rank is an upgrade. */
export function isUpgrade(from: Pick<Plan, 'rank'>, to: Pick<Plan, 'rank'>): boolean {
  return to.rank > from.rank;
}

/** What a plan allows, as other subgraphs learn it from subscription.* events (null: unlimited). */
export interface Entitlements {
  tier: PlanTier;
  storiesPerMonth: number | null;
  collaboratorsPerStory: number | null;
  videosPerMonth: number | null;
}

export function entitlements(plan: Pick<Plan, 'tier' | 'storiesPerMonth' | 'collaboratorsPerStory' | 'videosPerMonth'>): Entitlements {
  return { tier: plan.tier, storiesPerMonth: plan.storiesPerMonth, collaboratorsPerStory: plan.collaboratorsPerStory, videosPerMonth: plan.videosPerMonth };
}

/** A cancelled membership allows nothing more, whatever its tier was. */
export function cancelledEntitlements(tier: PlanTier): Entitlements {
  return { tier, storiesPerMonth: 0, collaboratorsPerStory: 0, videosPerMonth: 0 };
}

// A Map, not an object literal: event types come from the wire, and `toString` is no metric.
const METRIC_OF_EVENT = new Map<string, UsageMetric>([
  ['story.created', 'storiesCreated'],
  ['voice.cloned', 'voiceClones'],
  ['collaboration.invitation.sent', 'collaboratorsInvited'],
  // Only a completed generation costs one: a failed one (video.generation.failed) produced nothing.
  ['video.generation.completed', 'videosGenerated'],
]);

/** The usage counter an event type adds one to, or null if it counts nothing. */
export function usageMetricOf(eventType: string): UsageMetric | null {
  return METRIC_OF_EVENT.get(eventType) ?? null;
}

/** The plan's fields that hold a monthly limit. */
export type MonthlyLimits = Pick<Plan, 'storiesPerMonth' | 'videosPerMonth'>;

// Collaborators are limited per story, which a monthly count cannot tell; voice clones are not limited.
const LIMIT_OF_METRIC: Record<MonthlyMetric, keyof MonthlyLimits> = {
  storiesCreated: 'storiesPerMonth',
  videosGenerated: 'videosPerMonth',
};

/** Whether plans limit the metric per calendar month (a plan may still leave it unlimited). */
export function isMonthlyMetric(metric: UsageMetric): metric is MonthlyMetric {
  return Object.hasOwn(LIMIT_OF_METRIC, metric);
}

/**
 * The limit of the plan that a usage count has reached, or null: to be announced unless this
 * period already announced it (or a higher one) for this metric; `announced` is that metric's,
 * each metric is announced on its own. `>=`, not `===`: after a downgrade the count may
 * already be past the new plan's limit.
 */
export function limitReached(plan: MonthlyLimits, metric: UsageMetric, count: number, announced: number | null): number | null {
  if (!isMonthlyMetric(metric)) return null;
  const limit = plan[LIMIT_OF_METRIC[metric]];
  if (limit === null || count < limit) return null;
  return announced !== null && announced >= limit ? null : limit;
}

export type PlanChange =
  | { kind: 'upgrade'; period: Period; invoice: { amountCents: number; currency: string } }
  | { kind: 'downgrade'; period: Period };

/**
 * Moving a membership from plan `from` to plan `to` at `now`. Either way it takes effect at
 * once, for the period containing `now`; an upgrade is invoiced the new plan's full price for
 * that period, a downgrade issues nothing.
 */
export function decidePlanChange(membership: Pick<Membership, 'status'>, from: Plan, to: Plan, now: Date): PlanChange {
  if (membership.status === 'CANCELLED') throw userError('MEMBERSHIP_CANCELLED', 'This membership is cancelled');
  if (from.tier === to.tier) throw userError('SAME_PLAN', `You are already on the ${to.name} plan`, 'tier');
  const period = billingPeriod(now);
  if (!isUpgrade(from, to)) return { kind: 'downgrade', period };
  return { kind: 'upgrade', period, invoice: { amountCents: to.priceCents, currency: to.currency } };
}
