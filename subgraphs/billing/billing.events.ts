import type { EventEnvelope, NewEvent } from '../../platform/events/envelope.js';
import type { Entitlements, MembershipStatus, MonthlyMetric, PlanTier } from './billing.rules.js';

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
 * This subgraph is a step of identity's user deletion saga: it reports user.erasure.completed
 * in the transaction that erased the user's data here, and erases again when identity asks
 * (user.erasure.requested naming it) because no report came in time.
 */
export const USER_ERASURE_REQUESTED = 'user.erasure.requested';
export const USER_ERASURE_COMPLETED = 'user.erasure.completed';
const ERASURE_STEP = 'billing';

export interface UserErasureRequested {
  userId: string;
  services: string[];
  attempt: number;
  /** When the account was deleted (ISO-8601). */
  requestedAt: string;
}

export interface UserErasureCompleted {
  userId: string;
  service: string;
}

/**
 * Whose data to erase, and as of when (the deletion's time, so a late or repeated erasure has
 * the effect it would have had on time): user.deleted, or a request naming this subgraph.
 * Null for a request to other subgraphs.
 */
export function erasureAsked(event: EventEnvelope): { userId: string; at: Date } | null {
  if (event.type === USER_DELETED) return { userId: (event.payload as UserLifecycle).userId, at: new Date(event.timestamp) };
  if (event.type !== USER_ERASURE_REQUESTED) return null;
  const { userId, services, requestedAt } = event.payload as UserErasureRequested;
  return services.includes(ERASURE_STEP) ? { userId, at: new Date(requestedAt) } : null;
}

/** The report the saga waits for. */
export function erasureCompleted(userId: string): NewEvent<UserErasureCompleted> {
  return { type: USER_ERASURE_COMPLETED, userId, payload: { userId, service: ERASURE_STEP } };
}
