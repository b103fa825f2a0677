import { describe, expect, it } from 'vitest';
import { ERASED, redactPayload, uuidsIn } from './redaction.rules.js';

const ada = '0b6f9a52-5f3c-4a8e-9d0e-1c2b3a4d5e6f';
const story = '7c1e2d3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f';

describe('redactPayload', () => {
  it('keeps ids, times, numbers, booleans, nulls and enum values, and erases every other string', () => {
    expect(redactPayload({ userId: ada, email: 'ada@example.com', displayName: 'Ada', locale: 'en-GB', provider: 'google' })).toEqual({
      userId: ada,
      email: ERASED,
      displayName: ERASED,
      locale: ERASED,
      provider: 'google',
    });
    const invitation = {
      invitationId: story,
      storyId: story,
      inviterId: ada,
      storyTitle: 'The Long Night',
      characterName: 'Hero',
      inviteeName: 'Bob Smith',
      inviteeEmail: 'bob@example.com',
      inviteePhone: '+15551234567',
      inviteLinkSealed: 'v1.abc.def',
      expiresAt: '2026-12-01T10:00:00.000Z',
      position: 2,
      required: true,
      note: null,
    };
    expect(redactPayload(invitation)).toEqual({
      ...invitation,
      storyTitle: ERASED,
      characterName: ERASED,
      inviteeName: ERASED,
      inviteeEmail: ERASED,
      inviteePhone: ERASED,
      inviteLinkSealed: ERASED,
    });
  });

  it('goes into arrays and nested objects, an array taking its key from the object holding it', () => {
    const payload = {
      services: ['billing', 'story'],
      entitlements: { tier: 'GOLD', storiesPerMonth: null },
      characters: [{ id: story, name: 'Maria' }],
      attempts: [{ provider: 'runway', status: 'FAILED', error: 'The prompt "Ada at sea" was refused' }],
      changes: { displayName: 'Ada L.', avatarUrl: null },
      tags: ['private', 'diary'],
    };
    expect(redactPayload(payload)).toEqual({
      services: ['billing', 'story'],
      entitlements: { tier: 'GOLD', storiesPerMonth: null },
      characters: [{ id: story, name: ERASED }],
      attempts: [{ provider: 'runway', status: 'FAILED', error: ERASED }],
      changes: { displayName: ERASED, avatarUrl: null },
      tags: [ERASED, ERASED],
    });
  });

  it('takes an enum key only for one token: free text, addresses and capitals outside enum keys go', () => {
    expect(redactPayload({ reason: 'mailbox full, try later', status: 'ada@example.com', displayName: 'ADA', code: 'RATE_LIMITED' })).toEqual({
      reason: ERASED,
      status: ERASED,
      displayName: ERASED,
      code: 'RATE_LIMITED',
    });
  });

  it('redacts a bare value payload, and a redacted payload stays as it is', () => {
    expect(redactPayload('Ada Lovelace')).toBe(ERASED);
    expect(redactPayload(ada)).toBe(ada);
    expect(redactPayload(null)).toBeNull();
    expect(redactPayload([1, 'x', false])).toEqual([1, ERASED, false]);
    const once = redactPayload({ email: 'ada@example.com', n: 1, userId: ada });
    expect(redactPayload(once)).toEqual(once);
  });
});

describe('uuidsIn', () => {
  it('finds the user and every uuid in the payload, lower-cased, once each', () => {
    expect(uuidsIn(ada, { storyId: story.toUpperCase(), text: `by ${ada}`, nested: [{ id: story }] }).sort()).toEqual([ada, story].sort());
    expect(uuidsIn(null, 'no ids')).toEqual([]);
    expect(uuidsIn('not-a-uuid', null)).toEqual([]);
  });
});
