import { describe, expect, it } from 'vitest';
import { domainErrorOf } from '../../test/support/domain-error.js';
import * as rules from './collaboration.rules.js';
import { hashOf, looksLikeToken, newInvitationToken } from './invitation-token.js';

describe('invitation expiry, by the clock given', () => {
  const sentAt = new Date('2026-11-01T12:00:00Z');
  const pending = { status: 'PENDING' as const, expiresAt: rules.expiresAtFor(sentAt) };

  it('expires 120 hours after sending', () => {
    expect(pending.expiresAt.toISOString()).toBe('2026-11-06T12:00:00.000Z');
    expect(rules.invitationStatus(pending, new Date('2026-11-06T11:59:59.999Z'))).toBe('PENDING');
    expect(rules.invitationStatus(pending, new Date('2026-11-06T12:00:00Z'))).toBe('EXPIRED');
  });

  it('never turns an answered invitation into an expired one', () => {
    const late = new Date('2027-01-01T00:00:00Z');
    expect(rules.invitationStatus({ ...pending, status: 'ACCEPTED' }, late)).toBe('ACCEPTED');
    expect(rules.invitationStatus({ ...pending, status: 'REVOKED' }, late)).toBe('REVOKED');
  });
});

describe('templates, contacts, limits', () => {
  it('needs a published story with characters', () => {
    expect(domainErrorOf(() => rules.assertTemplateAllowed({ status: 'DRAFT', characters: [{ name: 'Mira', description: '' }] }))).toBe('STORY_NOT_PUBLISHED:storyId');
    expect(domainErrorOf(() => rules.assertTemplateAllowed({ status: 'PUBLISHED', characters: [] }))).toBe('NO_CHARACTERS:storyId');
    expect(domainErrorOf(() => rules.assertTemplateAllowed({ status: 'PUBLISHED', characters: [{ name: 'Mira', description: '' }] }))).toBe('ok');
  });

  it('takes an email, an E.164 phone, or both, and a name', () => {
    expect(rules.normalizeContact({ name: '  Gia  G. ', email: ' Gia@Example.COM ' })).toEqual({ name: 'Gia G.', email: 'gia@example.com', phone: null });
    expect(rules.normalizeContact({ name: 'Bob', phone: '+1 (555) 010-2233' })).toEqual({ name: 'Bob', email: null, phone: '+15550102233' });
    expect(domainErrorOf(() => rules.normalizeContact({ name: 'Bob' }))).toBe('INVALID_CONTACT:email');
    expect(domainErrorOf(() => rules.normalizeContact({ name: 'Bob', email: 'not an address' }))).toBe('INVALID_CONTACT:email');
    expect(domainErrorOf(() => rules.normalizeContact({ name: 'Bob', phone: '555-0102' }))).toBe('INVALID_CONTACT:phone');
    expect(domainErrorOf(() => rules.normalizeContact({ name: ' ', email: 'a@b.co' }))).toBe('INVALID_INPUT:name');
  });

  it('caps invitations holding a character by the plan', () => {
    expect(domainErrorOf(() => rules.assertInviteAllowed({ tier: 'FREE', collaboratorsPerStory: 1 }, 0))).toBe('ok');
    expect(domainErrorOf(() => rules.assertInviteAllowed({ tier: 'FREE', collaboratorsPerStory: 1 }, 1))).toBe('PLAN_LIMIT_REACHED:null');
    expect(domainErrorOf(() => rules.assertInviteAllowed({ tier: 'PLATINUM', collaboratorsPerStory: null }, 500))).toBe('ok');
  });

  it('completes when everyone who plays has submitted and nobody is still invited', () => {
    expect(rules.isComplete(2, 2, 0)).toBe(true);
    expect(rules.isComplete(2, 1, 0)).toBe(false);
    expect(rules.isComplete(1, 1, 1)).toBe(false);
    expect(rules.isComplete(0, 0, 0)).toBe(false);
  });
});

describe('invitation tokens', () => {
  it('are 256 random bits, stored as a hash that only the token itself gives', () => {
    const { token, hash } = newInvitationToken();
    expect(looksLikeToken(token)).toBe(true);
    expect(Buffer.from(token, 'base64url')).toHaveLength(32);
    expect(hash).toBe(hashOf(token));
    expect(hash).not.toContain(token);
    expect(hashOf(token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A'))).not.toBe(hash);
    expect(newInvitationToken().token).not.toBe(token);
    expect(looksLikeToken('short')).toBe(false);
  });
});
