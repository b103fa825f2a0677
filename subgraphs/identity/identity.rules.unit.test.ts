import { describe, expect, it } from 'vitest';
import { domainErrorOf } from '../../test/support/domain-error.js';
import type { User } from './identity.entities.js';
import * as rules from './identity.rules.js';

const user: User = {
  id: 'u1', email: 'a@example.com', emailVerified: false, passwordHash: null, displayName: 'Ada', avatarUrl: null, locale: 'en', role: 'USER',
  createdAt: new Date(0), updatedAt: new Date(0), deletionRequestedAt: null,
};

describe('identity rules', () => {
  it('normalises emails and refuses malformed ones', () => {
    expect(rules.checkEmail('  Ada@Example.COM ')).toBe('ada@example.com');
    for (const bad of ['', 'ada', 'ada@', '@example.com', 'ada@example', 'a da@example.com', 'ada@example.c', `${'x'.repeat(65)}@example.com`]) {
      expect(domainErrorOf(() => rules.checkEmail(bad)), bad).toBe('INVALID_EMAIL:email');
    }
  });

  it('wants passwords of 10 to 1024 characters', () => {
    expect(domainErrorOf(() => rules.checkPassword('x'.repeat(9)))).toBe('WEAK_PASSWORD:password');
    expect(domainErrorOf(() => rules.checkPassword('x'.repeat(10)))).toBe('ok');
    expect(domainErrorOf(() => rules.checkPassword('x'.repeat(1025)))).toBe('WEAK_PASSWORD:password');
  });

  it('canonicalises BCP 47 locales and refuses others', () => {
    expect(rules.checkLocale('pt-br')).toBe('pt-BR');
    expect(rules.checkLocale('EN')).toBe('en');
    expect(domainErrorOf(() => rules.checkLocale('not a locale'))).toBe('INVALID_LOCALE:locale');
  });

  it('accepts only absolute http(s) avatar URLs', () => {
    expect(rules.checkAvatarUrl('https://cdn.example.com/a.png')).toBe('https://cdn.example.com/a.png');
    for (const bad of ['javascript:alert(1)', '/relative.png', 'ftp://x.example.com/a']) {
      expect(domainErrorOf(() => rules.checkAvatarUrl(bad)), bad).toBe('INVALID_AVATAR_URL:avatarUrl');
    }
  });

  it('returns only the profile fields that change, and clears the avatar with ""', () => {
    expect(rules.profileUpdate(user, { displayName: ' Ada ', locale: 'fr' })).toEqual({ locale: 'fr' });
    expect(rules.profileUpdate({ ...user, avatarUrl: 'https://x.example.com/a' }, { avatarUrl: '' })).toEqual({ avatarUrl: null });
    expect(rules.profileUpdate(user, {})).toEqual({});
    expect(domainErrorOf(() => rules.profileUpdate(user, { displayName: '   ' }))).toBe('INVALID_DISPLAY_NAME:displayName');
  });

  it('decides what presenting a refresh token means', () => {
    const now = new Date('2026-01-01T00:00:00Z');
    const later = new Date('2026-02-01T00:00:00Z');
    expect(rules.refreshDecision({ expiresAt: later, rotatedAt: null, revokedAt: null }, now)).toBe('rotate');
    expect(rules.refreshDecision({ expiresAt: later, rotatedAt: now, revokedAt: null }, now)).toBe('reuse');
    expect(rules.refreshDecision({ expiresAt: later, rotatedAt: now, revokedAt: now }, now)).toBe('revoked');
    expect(rules.refreshDecision({ expiresAt: now, rotatedAt: null, revokedAt: null }, now)).toBe('expired');
  });

  it('makes ADMIN_EMAILS accounts admins only once their address is verified', () => {
    const boss = { ...user, email: 'boss@example.com' };
    expect(rules.rolesOf({ ...boss, emailVerified: true }, ['boss@example.com'])).toEqual(['USER', 'ADMIN']);
    expect(rules.rolesOf(boss, ['boss@example.com'])).toEqual(['USER']);
    expect(rules.rolesOf({ ...user, emailVerified: true }, ['boss@example.com'])).toEqual(['USER']);
    expect(rules.rolesOf({ ...user, role: 'ADMIN' }, [])).toEqual(['USER', 'ADMIN']);
  });

  it('issues guest sessions to SERVICE callers only, for UUIDs only', () => {
    const p = '0b6f7a8e-1c2d-4e5f-8a9b-0c1d2e3f4a5b';
    const t = '7d4c1a52-7b3e-4f0e-9a51-3c2b8e6f0a11';
    const check = (caller: Parameters<typeof rules.checkGuestSessionRequest>[0], participantId = p, templateId = t) =>
      domainErrorOf(() => rules.checkGuestSessionRequest(caller, participantId, templateId));
    expect(check({ userId: null, roles: ['SERVICE'] })).toBe('ok');
    expect(check({ userId: null, roles: [] })).toBe('FORBIDDEN:null');
    expect(check({ userId: 'u1', roles: ['USER', 'ADMIN'] })).toBe('FORBIDDEN:null');
    expect(check({ userId: null, roles: ['GUEST'], guest: { participantId: p, templateId: t } })).toBe('FORBIDDEN:null');
    expect(check({ userId: null, roles: ['SERVICE'] }, 'p-1')).toBe('BAD_USER_INPUT:participantId');
    expect(check({ userId: null, roles: ['SERVICE'] }, p, '*')).toBe('BAD_USER_INPUT:templateId');
  });
});
