import { describe, expect, it } from 'vitest';
import { DomainError } from '../../platform/errors.js';
import type { Plan } from './billing.entities.js';
import {
  billingPeriod,
  cancelledEntitlements,
  currentPeriod,
  decidePlanChange,
  entitlements,
  isMonthlyMetric,
  isUpgrade,
  limitReached,
  usageMetricOf,
} from './billing.rules.js';

/** The plans as the migration seeds them. */
const PLANS: Record<Plan['tier'], Plan> = {
  FREE: { tier: 'FREE', name: 'Free', rank: 0, priceCents: 0, currency: 'USD', storiesPerMonth: 3, collaboratorsPerStory: 1, videosPerMonth: 1 },
  SILVER: { tier: 'SILVER', name: 'Silver', rank: 1, priceCents: 999, currency: 'USD', storiesPerMonth: 10, collaboratorsPerStory: 5, videosPerMonth: 5 },
  GOLD: { tier: 'GOLD', name: 'Gold', rank: 2, priceCents: 1999, currency: 'USD', storiesPerMonth: 30, collaboratorsPerStory: 10, videosPerMonth: 20 },
  PLATINUM: { tier: 'PLATINUM', name: 'Platinum', rank: 3, priceCents: 3999, currency: 'USD', storiesPerMonth: null, collaboratorsPerStory: null, videosPerMonth: null },
};

const at = (iso: string) => new Date(iso);

const codeOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    if (error instanceof DomainError) return { kind: error.kind, code: error.code, field: error.field };
    throw error;
  }
  return null;
};

describe('billingPeriod', () => {
  it('is the UTC calendar month containing the time, end exclusive', () => {
    expect(billingPeriod(at('2026-11-26T10:00:00Z'))).toEqual({ start: at('2026-11-01T00:00:00Z'), end: at('2026-12-01T00:00:00Z') });
  });

  it('includes the first instant and excludes the next month’s', () => {
    expect(billingPeriod(at('2026-11-01T00:00:00.000Z')).start).toEqual(at('2026-11-01T00:00:00Z'));
    expect(billingPeriod(at('2026-11-30T23:59:59.999Z')).end).toEqual(at('2026-12-01T00:00:00Z'));
  });

  it('rolls over the year and follows UTC, not the local zone', () => {
    expect(billingPeriod(at('2026-12-31T23:30:00-02:00'))).toEqual({ start: at('2027-01-01T00:00:00Z'), end: at('2027-02-01T00:00:00Z') });
  });

  it('knows short months and leap years', () => {
    expect(billingPeriod(at('2028-02-29T12:00:00Z')).end).toEqual(at('2028-03-01T00:00:00Z'));
  });
});

describe('currentPeriod', () => {
  const stored = { currentPeriodStart: at('2026-10-01T00:00:00Z'), currentPeriodEnd: at('2026-11-01T00:00:00Z') };

  it('renews an active membership with every month', () => {
    expect(currentPeriod({ status: 'ACTIVE', ...stored }, at('2027-01-15T00:00:00Z'))).toEqual(billingPeriod(at('2027-01-15T00:00:00Z')));
    expect(currentPeriod({ status: 'PAST_DUE', ...stored }, at('2026-10-15T00:00:00Z'))).toEqual(billingPeriod(at('2026-10-15T00:00:00Z')));
  });

  it('keeps a cancelled membership in the period it ended in', () => {
    expect(currentPeriod({ status: 'CANCELLED', ...stored }, at('2027-01-15T00:00:00Z'))).toEqual({ start: stored.currentPeriodStart, end: stored.currentPeriodEnd });
  });
});

describe('isUpgrade', () => {
  it('compares ranks', () => {
    expect(isUpgrade(PLANS.FREE, PLANS.SILVER)).toBe(true);
    expect(isUpgrade(PLANS.GOLD, PLANS.PLATINUM)).toBe(true);
    expect(isUpgrade(PLANS.GOLD, PLANS.SILVER)).toBe(false);
    expect(isUpgrade(PLANS.GOLD, PLANS.GOLD)).toBe(false);
  });
});

describe('entitlements', () => {
  it('are the plan’s limits, null for unlimited', () => {
    expect(entitlements(PLANS.FREE)).toEqual({ tier: 'FREE', storiesPerMonth: 3, collaboratorsPerStory: 1, videosPerMonth: 1 });
    expect(entitlements(PLANS.GOLD)).toEqual({ tier: 'GOLD', storiesPerMonth: 30, collaboratorsPerStory: 10, videosPerMonth: 20 });
    expect(entitlements(PLANS.PLATINUM)).toEqual({ tier: 'PLATINUM', storiesPerMonth: null, collaboratorsPerStory: null, videosPerMonth: null });
  });

  it('are nothing once cancelled, whatever the tier', () => {
    expect(cancelledEntitlements('PLATINUM')).toEqual({ tier: 'PLATINUM', storiesPerMonth: 0, collaboratorsPerStory: 0, videosPerMonth: 0 });
  });
});

describe('usageMetricOf', () => {
  it('maps the counted event types to their metric', () => {
    expect(usageMetricOf('story.created')).toBe('storiesCreated');
    expect(usageMetricOf('voice.cloned')).toBe('voiceClones');
    expect(usageMetricOf('collaboration.invitation.sent')).toBe('collaboratorsInvited');
    expect(usageMetricOf('video.generation.completed')).toBe('videosGenerated');
  });

  it('counts nothing for other types', () => {
    expect(usageMetricOf('user.registered')).toBeNull();
    expect(usageMetricOf('story.updated')).toBeNull();
    expect(usageMetricOf('toString')).toBeNull();
  });

  it('charges nothing for a video that was not made', () => {
    expect(usageMetricOf('video.generation.started')).toBeNull();
    expect(usageMetricOf('video.generation.failed')).toBeNull();
  });
});

describe('isMonthlyMetric', () => {
  it('holds for the metrics plans limit per month, whatever the plan', () => {
    expect(isMonthlyMetric('storiesCreated')).toBe(true);
    expect(isMonthlyMetric('videosGenerated')).toBe(true);
    expect(isMonthlyMetric('voiceClones')).toBe(false);
    expect(isMonthlyMetric('collaboratorsInvited')).toBe(false);
  });
});

describe('limitReached', () => {
  it('is the limit once the count reaches it, until announced', () => {
    expect(limitReached(PLANS.FREE, 'storiesCreated', 2, null)).toBeNull();
    expect(limitReached(PLANS.FREE, 'storiesCreated', 3, null)).toBe(3);
    expect(limitReached(PLANS.FREE, 'storiesCreated', 4, 3)).toBeNull();
    expect(limitReached(PLANS.SILVER, 'storiesCreated', 10, null)).toBe(10);
  });

  it('announces a higher limit after an upgrade, and a passed one after a downgrade', () => {
    expect(limitReached(PLANS.SILVER, 'storiesCreated', 10, 3)).toBe(10);
    expect(limitReached(PLANS.SILVER, 'storiesCreated', 13, null)).toBe(10);
    expect(limitReached(PLANS.FREE, 'storiesCreated', 11, 10)).toBeNull();
  });

  it('never fires for unlimited plans or metrics without a monthly limit', () => {
    expect(limitReached(PLANS.PLATINUM, 'storiesCreated', 1000, null)).toBeNull();
    expect(limitReached(PLANS.FREE, 'collaboratorsInvited', 1, null)).toBeNull();
    expect(limitReached(PLANS.FREE, 'voiceClones', 3, null)).toBeNull();
    expect(limitReached(PLANS.PLATINUM, 'videosGenerated', 1000, null)).toBeNull();
  });

  it('limits videos by the plan’s videos per month, not its stories', () => {
    expect(limitReached(PLANS.FREE, 'videosGenerated', 1, null)).toBe(1);
    expect(limitReached(PLANS.FREE, 'videosGenerated', 2, 1)).toBeNull();
    expect(limitReached(PLANS.SILVER, 'videosGenerated', 4, null)).toBeNull();
    expect(limitReached(PLANS.SILVER, 'videosGenerated', 5, 1)).toBe(5);
    expect(limitReached(PLANS.GOLD, 'videosGenerated', 19, null)).toBeNull();
    expect(limitReached(PLANS.GOLD, 'videosGenerated', 20, null)).toBe(20);
  });

  it('never takes one metric’s limit for the other’s', () => {
    const plan = { storiesPerMonth: 30, videosPerMonth: 1 };
    expect(limitReached(plan, 'storiesCreated', 1, null)).toBeNull();
    expect(limitReached(plan, 'videosGenerated', 1, null)).toBe(1);
    expect(limitReached(plan, 'storiesCreated', 30, null)).toBe(30);
  });
});

describe('decidePlanChange', () => {
  const now = at('2026-11-26T10:00:00Z');
  const period = { start: at('2026-11-01T00:00:00Z'), end: at('2026-12-01T00:00:00Z') };

  it('invoices an upgrade the new plan’s full price for the current month', () => {
    expect(decidePlanChange({ status: 'ACTIVE' }, PLANS.FREE, PLANS.SILVER, now)).toEqual({
      kind: 'upgrade',
      period,
      invoice: { amountCents: 999, currency: 'USD' },
    });
    expect(decidePlanChange({ status: 'PAST_DUE' }, PLANS.SILVER, PLANS.PLATINUM, now)).toMatchObject({ kind: 'upgrade', invoice: { amountCents: 3999 } });
  });

  it('applies a downgrade at once, without an invoice', () => {
    expect(decidePlanChange({ status: 'ACTIVE' }, PLANS.GOLD, PLANS.FREE, now)).toEqual({ kind: 'downgrade', period });
  });

  it('refuses the plan the member is on', () => {
    expect(codeOf(() => decidePlanChange({ status: 'ACTIVE' }, PLANS.GOLD, PLANS.GOLD, now))).toEqual({ kind: 'user', code: 'SAME_PLAN', field: 'tier' });
  });

  it('refuses any change of a cancelled membership', () => {
    expect(codeOf(() => decidePlanChange({ status: 'CANCELLED' }, PLANS.FREE, PLANS.GOLD, now))).toEqual({ kind: 'user', code: 'MEMBERSHIP_CANCELLED', field: null });
    expect(codeOf(() => decidePlanChange({ status: 'CANCELLED' }, PLANS.FREE, PLANS.FREE, now))?.code).toBe('MEMBERSHIP_CANCELLED');
  });
});
