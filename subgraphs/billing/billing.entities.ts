import { EntitySchema } from '@mikro-orm/postgresql';
import type { InvoiceStatus, MembershipStatus, PlanTier } from './billing.rules.js';

/** One of the four plans; seeded by the migration, read-only at run time. */
export interface Plan {
  tier: PlanTier;
  name: string;
  /** Orders plans: moving to a higher rank is an upgrade. */
  rank: number;
  priceCents: number;
  currency: string;
  /** null: unlimited. */
  storiesPerMonth: number | null;
  /** null: unlimited. */
  collaboratorsPerStory: number | null;
  /** Videos generated (completed) per calendar month; null: unlimited. */
  videosPerMonth: number | null;
}

export const Plan = new EntitySchema<Plan>({
  name: 'Plan',
  tableName: 'plan',
  properties: {
    tier: { type: 'string', primary: true },
    name: { type: 'string' },
    rank: { type: 'integer' },
    priceCents: { type: 'integer', fieldName: 'price_cents' },
    currency: { type: 'string' },
    storiesPerMonth: { type: 'integer', nullable: true, fieldName: 'stories_per_month' },
    collaboratorsPerStory: { type: 'integer', nullable: true, fieldName: 'collaborators_per_story' },
    videosPerMonth: { type: 'integer', nullable: true, fieldName: 'videos_per_month' },
  },
});

/** A user's plan. One per user, kept (CANCELLED) after the account is deleted. */
export interface Membership {
  userId: string;
  tier: PlanTier;
  status: MembershipStatus;
  /** The period of the membership's last change (rules.currentPeriod gives the one it is in now). */
  currentPeriodStart: Date;
  currentPeriodEnd: Date;
  createdAt: Date;
  updatedAt: Date;
  cancelledAt: Date | null;
  /** One more with every change (plan, cancellation); subscription.* events carry it. */
  version: number;
}

export const Membership = new EntitySchema<Membership>({
  name: 'Membership',
  tableName: 'membership',
  properties: {
    userId: { type: 'uuid', primary: true, fieldName: 'user_id' },
    tier: { type: 'string' },
    status: { type: 'string' },
    currentPeriodStart: { type: 'Date', fieldName: 'current_period_start' },
    currentPeriodEnd: { type: 'Date', fieldName: 'current_period_end' },
    createdAt: { type: 'Date', fieldName: 'created_at' },
    updatedAt: { type: 'Date', fieldName: 'updated_at' },
    cancelledAt: { type: 'Date', nullable: true, fieldName: 'cancelled_at' },
    version: { type: 'integer' },
  },
});

/** What a user did in one period, counted from events (so it can be rebuilt from the stream). */
export interface Usage {
  userId: string;
  periodStart: Date;
  storiesCreated: number;
  voiceClones: number;
  collaboratorsInvited: number;
  /** Completed video generations; failed ones cost nothing. */
  videosGenerated: number;
  /** The highest stories limit announced for this period (usage.limit.reached), if any. */
  storiesLimitReached: number | null;
  /** The same for the videos limit. */
  videosLimitReached: number | null;
}

export const Usage = new EntitySchema<Usage>({
  name: 'Usage',
  tableName: 'usage',
  properties: {
    userId: { type: 'uuid', primary: true, fieldName: 'user_id' },
    periodStart: { type: 'Date', primary: true, fieldName: 'period_start' },
    storiesCreated: { type: 'integer', fieldName: 'stories_created' },
    voiceClones: { type: 'integer', fieldName: 'voice_clones' },
    collaboratorsInvited: { type: 'integer', fieldName: 'collaborators_invited' },
    videosGenerated: { type: 'integer', fieldName: 'videos_generated' },
    storiesLimitReached: { type: 'integer', nullable: true, fieldName: 'stories_limit_reached' },
    videosLimitReached: { type: 'integer', nullable: true, fieldName: 'videos_limit_reached' },
  },
});

/** Issued by an upgrade, for the new plan's price over the period it happened in. */
export interface Invoice {
  id: string;
  userId: string;
  tier: PlanTier;
  amountCents: number;
  currency: string;
  status: InvoiceStatus;
  issuedAt: Date;
  periodStart: Date;
  periodEnd: Date;
}

export const Invoice = new EntitySchema<Invoice>({
  name: 'Invoice',
  tableName: 'invoice',
  properties: {
    id: { type: 'uuid', primary: true },
    userId: { type: 'uuid', fieldName: 'user_id' },
    tier: { type: 'string' },
    amountCents: { type: 'integer', fieldName: 'amount_cents' },
    currency: { type: 'string' },
    status: { type: 'string' },
    issuedAt: { type: 'Date', fieldName: 'issued_at' },
    periodStart: { type: 'Date', fieldName: 'period_start' },
    periodEnd: { type: 'Date', fieldName: 'period_end' },
  },
});

export const billingEntities = [Plan, Membership, Usage, Invoice];
