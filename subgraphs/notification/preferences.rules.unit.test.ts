import { describe, expect, it } from 'vitest';
import { domainErrorOf } from '../../test/support/domain-error.js';
import { allows, checkPreferenceChange, deliveryKey, effectivePreferences } from './preferences.rules.js';

describe('preferences', () => {
  it('defaults every category on but MARKETING, for both channels', () => {
    const all = effectivePreferences([]);
    expect(all).toHaveLength(14);
    expect(all.filter((p) => !p.enabled).map((p) => `${p.category}/${p.channel}`)).toEqual(['MARKETING/EMAIL', 'MARKETING/SMS']);
  });

  it('follows a stored choice: collaboration emails off stops those, not account ones or SMS', () => {
    const stored = [{ category: 'COLLABORATION' as const, channel: 'EMAIL' as const, enabled: false }];
    expect(allows(stored, 'COLLABORATION', 'EMAIL')).toBe(false);
    expect(allows(stored, 'COLLABORATION', 'SMS')).toBe(true);
    expect(allows(stored, 'ACCOUNT', 'EMAIL')).toBe(true);
    expect(allows([{ category: 'MARKETING', channel: 'EMAIL', enabled: true }], 'MARKETING', 'EMAIL')).toBe(true);
  });

  it('never lets ACCOUNT or BILLING be turned off, even by a stored row', () => {
    expect(domainErrorOf(() => checkPreferenceChange({ category: 'BILLING', channel: 'EMAIL', enabled: false }))).toBe('REQUIRED_CATEGORY:enabled');
    expect(domainErrorOf(() => checkPreferenceChange({ category: 'ACCOUNT', channel: 'SMS', enabled: true }))).toBe('ok');
    expect(allows([{ category: 'ACCOUNT', channel: 'EMAIL', enabled: false }], 'ACCOUNT', 'EMAIL')).toBe(true);
  });

  it('keys a delivery by event, channel and normalised address', () => {
    expect(deliveryKey('e1', 'EMAIL', ' Ada@Example.com ')).toBe(deliveryKey('e1', 'EMAIL', 'ada@example.com'));
    expect(deliveryKey('e1', 'SMS', '+1 (555) 010-2233')).toBe('e1:SMS:+15550102233');
    expect(deliveryKey('e1', 'EMAIL', 'a@b.co')).not.toBe(deliveryKey('e2', 'EMAIL', 'a@b.co'));
  });
});
