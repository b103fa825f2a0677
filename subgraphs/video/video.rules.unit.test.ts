import { describe, expect, it } from 'vitest';
import { domainErrorOf } from '../../test/support/domain-error.js';
import { DomainError } from '../../platform/errors.js';
import { assertVideoAllowed, jobProgress, monthOf, normalizeStyle, providerOrder, videosPerMonthOf } from './video.rules.js';

describe('providerOrder', () => {
  it('keeps the settings\' order, and moves an enabled preferred provider first', () => {
    expect(providerOrder(['runway', 'pika', 'luma'], null)).toEqual(['runway', 'pika', 'luma']);
    expect(providerOrder(['runway', 'pika', 'luma'], 'luma')).toEqual(['luma', 'runway', 'pika']);
    expect(providerOrder(['runway', 'pika', 'luma'], 'runway')).toEqual(['runway', 'pika', 'luma']);
  });

  it('refuses a preferred provider that is not enabled', () => {
    expect(domainErrorOf(() => providerOrder(['runway'], 'local'))).toBe('PROVIDER_NOT_ENABLED:preferredProvider');
  });
});

describe('normalizeStyle', () => {
  it('trims and folds whitespace; empty is none; over 200 characters is refused', () => {
    expect(normalizeStyle('  film\n noir ')).toBe('film noir');
    expect(normalizeStyle('   ')).toBeNull();
    expect(normalizeStyle(undefined)).toBeNull();
    expect(normalizeStyle('x'.repeat(200))).toHaveLength(200);
    expect(domainErrorOf(() => normalizeStyle('x'.repeat(201)))).toBe('INVALID_INPUT:style');
  });
});

describe('plan limits', () => {
  it('allows videos under the limit, refuses at it, and never limits an unlimited plan', () => {
    expect(domainErrorOf(() => assertVideoAllowed({ tier: 'FREE', videosPerMonth: 1 }, 0))).toBe('ok');
    expect(domainErrorOf(() => assertVideoAllowed({ tier: 'FREE', videosPerMonth: 1 }, 1))).toBe('PLAN_LIMIT_REACHED:null');
    // After a downgrade the month may already be past the new limit.
    expect(domainErrorOf(() => assertVideoAllowed({ tier: 'SILVER', videosPerMonth: 5 }, 7))).toBe('PLAN_LIMIT_REACHED:null');
    expect(domainErrorOf(() => assertVideoAllowed({ tier: 'CANCELLED', videosPerMonth: 0 }, 0))).toBe('PLAN_LIMIT_REACHED:null');
    expect(domainErrorOf(() => assertVideoAllowed({ tier: 'PLATINUM', videosPerMonth: null }, 10_000))).toBe('ok');
  });

  it('reads entitlements from before plans limited videos by their tier, and a cancelled one as none', () => {
    expect(videosPerMonthOf({ tier: 'GOLD', videosPerMonth: 3 })).toBe(3);
    expect(videosPerMonthOf({ tier: 'PLATINUM', videosPerMonth: null })).toBeNull();
    expect(videosPerMonthOf({ tier: 'SILVER' })).toBe(5);
    expect(videosPerMonthOf({ tier: 'PLATINUM' })).toBeNull();
    expect(videosPerMonthOf({ tier: 'SILVER' }, true)).toBe(0);
    expect(videosPerMonthOf({ tier: 'UNKNOWN' })).toBe(0);
  });

  it('counts by UTC calendar month', () => {
    expect(monthOf(new Date('2026-12-31T23:59:59Z'))).toEqual({ start: new Date('2026-12-01T00:00:00Z'), end: new Date('2027-01-01T00:00:00Z') });
  });
});

describe('jobProgress', () => {
  it('rises from submission through making to done, and clamps what a provider reports', () => {
    const steps = [jobProgress('SUBMITTED'), jobProgress('MAKING', 0), jobProgress('MAKING', 0.5), jobProgress('MAKING', 1), jobProgress('DOWNLOADING'), jobProgress('DONE')];
    expect(steps).toEqual([...steps].sort((a, b) => a - b));
    expect(steps.at(-1)).toBe(1);
    expect(jobProgress('MAKING', 7)).toBe(jobProgress('MAKING', 1));
    expect(jobProgress('MAKING', -1)).toBe(jobProgress('MAKING', 0));
  });
});
