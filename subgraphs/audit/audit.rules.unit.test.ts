import { describe, expect, it } from 'vitest';
import { domainErrorOf } from '../../test/support/domain-error.js';
import { subjectMatches } from '../../platform/events/envelope.js';
import { typeMatch } from './audit.rules.js';

const TYPES = [
  'user.registered', 'user.login', 'user.oauth.linked', 'user', 'users.registered', 'story.created',
  'story.chapter.published', 'story', 'billing.invoice.paid', 'userXregistered', 'user.registeredX',
];

describe('type patterns', () => {
  it('keeps a plain type an exact match', () => {
    expect(typeMatch('user.registered')).toEqual({ exact: 'user.registered' });
    expect(typeMatch('user')).toEqual({ exact: 'user' });
  });

  it('turns wildcards into an anchored regex of escaped tokens', () => {
    expect(typeMatch('user.*')).toEqual({ regex: '^user\\.[^.]+$' });
    expect(typeMatch('story.>')).toEqual({ regex: '^story\\..+$' });
    expect(typeMatch('*.chapter.>')).toEqual({ regex: '^[^.]+\\.chapter\\..+$' });
    expect(typeMatch('a+b.*')).toEqual({ regex: '^a\\+b\\.[^.]+$' });
  });

  it.each(['user.*', 'user.>', '*.registered', 'story.*.published', 'story.>', '>', '*', '*.*', 'user.*.linked', '(user|story).*', 'user.regis[a-z]ered'])(
    'matches what NATS would for %s',
    (pattern) => {
      const match = typeMatch(pattern);
      for (const type of TYPES) {
        const matches = 'exact' in match ? type === match.exact : new RegExp(match.regex).test(type);
        expect(matches, `${pattern} ~ ${type}`).toBe(subjectMatches(pattern, type));
      }
    },
  );

  it('refuses empty tokens, partial wildcards, ">" before the end, white space, and huge patterns', () => {
    for (const bad of ['', '.', 'user.', '.user', 'user..login', 'user.>.x', '>.user', 'us*r', 'user.log>', 'user.**', 'user. login', 'a'.repeat(201)]) {
      expect(domainErrorOf(() => typeMatch(bad)), bad).toBe('BAD_USER_INPUT:type');
    }
  });
});
