import { describe, expect, it } from 'vitest';
import { HEADER, InternalAuthError, signCaller, verifyCaller } from './internal-auth.js';

const SECRET = 's'.repeat(32);
const caller = { userId: 'u-1', roles: ['USER' as const] };

describe('internal identity headers', () => {
  it('round-trips the caller, its auth error and the correlation id', () => {
    const headers = signCaller(SECRET, 'identity', caller, 'corr-12345678', 1_000_000);
    expect(verifyCaller(SECRET, 'identity', headers, 1_000_500)).toEqual({ caller, correlationId: 'corr-12345678' });
    const anonymous = { userId: null, roles: [], authError: 'The access token has expired' };
    expect(verifyCaller(SECRET, 'identity', signCaller(SECRET, 'identity', anonymous, 'c-12345678', 5), 5).caller).toEqual(anonymous);
  });

  it('refuses missing, forged, altered, misdirected and stale signatures', () => {
    const headers = signCaller(SECRET, 'identity', caller, 'corr-12345678', 1_000_000);
    const cases = {
      missing: {},
      forged: signCaller('another secret, just as long as it', 'identity', caller, 'corr-12345678', 1_000_000),
      alteredCaller: { ...headers, [HEADER.caller]: Buffer.from(JSON.stringify({ u: 'u-2', r: ['ADMIN'] })).toString('base64url') },
      alteredCorrelation: { ...headers, [HEADER.correlationId]: 'other-12345678' },
      forAnotherSubgraph: signCaller(SECRET, 'billing', caller, 'corr-12345678', 1_000_000),
    };
    for (const [name, h] of Object.entries(cases)) {
      expect(() => verifyCaller(SECRET, 'identity', h, 1_000_000), name).toThrow(InternalAuthError);
    }
    expect(() => verifyCaller(SECRET, 'identity', headers, 1_000_000 + 31_000)).toThrow('stale');
  });
});
