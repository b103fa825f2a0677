import type { EventEnvelope } from '../../platform/events/envelope.js';
import type { Entitlements, MembershipStatus, MonthlyMetric, PlanTier } from './billing.rules.js';
import { erasureAsked as erasureAskedOf, erasureCompleted as erasureCompletedBy } from '../../platform/events/erasure.js';

/**
 * What billing publishes and what it reads of the events it consumes (catalog:
 * schema/events/catalog.json). Consumed types are named here rather than imported from their
 * publishers: subgraphs share the catalog, not code.
 */
export const SUBSCRIPTION_CREATED = 'subscription.created';
export const SUBSCRIPTION_UPGRADED = 'subscription.upgraded';
export const SUBSCRIPTION_DOWNGRADED = 'subscription.downgraded';
export const SUBSCRIPTION_CANCELLED = 'subscription.cancelled';
export const USAGE_LIMIT_REACHED = 'usage.limit.reached';

export interface SubscriptionCreated {
  userId: string;
  /** The membership's version after this change: a consumer keeps the highest it has seen. */
  membershipVersion: number;
  tier: PlanTier;
  status: MembershipStatus;
  /** ISO-8601. */
  currentPeriodEnd: string;
  entitlements: Entitlements;
}

export interface SubscriptionUpgraded {
  userId: string;
  /** The membership's version after this change: a consumer keeps the highest it has seen. */
  membershipVersion: number;
  fromTier: PlanTier;
  toTier: PlanTier;
  invoiceId: string;
  amountCents: number;
  currency: string;
  entitlements: Entitlements;
}

export interface SubscriptionDowngraded {
  userId: string;
  /** The membership's version after this change: a consumer keeps the highest it has seen. */
  membershipVersion: number;
  fromTier: PlanTier;
  toTier: PlanTier;
  entitlements: Entitlements;
}

export interface SubscriptionCancelled {
  userId: string;
  /** The membership's version after this change: a consumer keeps the highest it has seen. */
  membershipVersion: number;
  tier: PlanTier;
  /** Nothing more is allowed: stories, collaborators and videos 0. */
  entitlements: Entitlements;
}

export interface UsageLimitReached {
  userId: string;
  metric: MonthlyMetric;
  limit: number;
  count: number;
  /** ISO-8601: the start of the calendar month counted. */
  periodStart: string;
  tier: PlanTier;
}

/** Consumed: identity's account lifecycle (payload.userId) and the events usage counts (envelope userId). */
export const USER_REGISTERED = 'user.registered';
export const USER_DELETED = 'user.deleted';
export const STORY_CREATED = 'story.created';
export const VOICE_CLONED = 'voice.cloned';
export const COLLABORATION_INVITATION_SENT = 'collaboration.invitation.sent';
export const VIDEO_GENERATION_COMPLETED = 'video.generation.completed';

export interface UserLifecycle {
  userId: string;
}

/**
 * This subgraph is a step of identity's user deletion saga (platform/events/erasure.ts): it
 * reports user.erasure.completed in the transaction that erased the user's data here.
 */
export { USER_ERASURE_COMPLETED, USER_ERASURE_REQUESTED, type UserErasureCompleted, type UserErasureRequested } from '../../platform/events/erasure.js';
const ERASURE_STEP = 'billing';
/** Whose data to erase here, and as of when; null when the event asks nothing of this subgraph. */
export const erasureAsked = (event: EventEnvelope) => erasureAskedOf(event, ERASURE_STEP);
export const erasureCompleted = (userId: string) => erasureCompletedBy(userId, ERASURE_STEP);
