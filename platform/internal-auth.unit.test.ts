import { describe, expect, it } from 'vitest';
import { HEADER, InternalAuthError, signCaller, verifyCaller } from './internal-auth.js';

const SECRET = 's'.repeat(32);
const caller = { userId: 'u-1', roles: ['USER' as const] };

describe('internal identity headers', () => {
  it('round-trips the caller and the correlation id', () => {
    const headers = signCaller(SECRET, caller, 'corr-12345678', 1_000_000);
    expect(verifyCaller(SECRET, headers, 1_000_500)).toEqual({ caller, correlationId: 'corr-12345678' });
  });

  it('refuses missing, forged, altered and stale signatures', () => {
    const headers = signCaller(SECRET, caller, 'corr-12345678', 1_000_000);
    const cases = {
      missing: {},
      forged: signCaller('another secret, just as long as it', caller, 'corr-12345678', 1_000_000),
      alteredCaller: { ...headers, [HEADER.caller]: Buffer.from(JSON.stringify({ u: 'u-2', r: ['ADMIN'] })).toString('base64url') },
      alteredCorrelation: { ...headers, [HEADER.correlationId]: 'other-12345678' },
    };
    for (const [name, h] of Object.entries(cases)) {
      expect(() => verifyCaller(SECRET, h, 1_000_000), name).toThrow(InternalAuthError);
    }
    expect(() => verifyCaller(SECRET, headers, 1_000_000 + 61_000)).toThrow('stale');
  });
});
