import { describe, expect, it } from 'vitest';
import { HEADER, InternalAuthError, signCaller, verifyCaller, type Caller } from './internal-auth.js';

const SECRET = 's'.repeat(32);
const caller: Caller = { userId: 'u-1', roles: ['USER'] };
const operation = { query: '{ me { id } }', variables: { a: 1 } };
const sign = (over: Partial<Parameters<typeof signCaller>[1]> = {}, now = 1_000_000, secret = SECRET) =>
  signCaller(secret, { audience: 'identity', caller, correlationId: 'corr-12345678', operation, ...over }, now);
const verify = (headers: Record<string, string>, now = 1_000_000, op: object = operation) =>
  verifyCaller(SECRET, { audience: 'identity', headers, operation: op }, now);

describe('internal identity headers', () => {
  it('round-trips the caller, its auth error and the correlation id', () => {
    expect(verify(sign(), 1_000_500)).toEqual({ caller, correlationId: 'corr-12345678' });
    const anonymous: Caller = { userId: null, roles: [], authError: 'The access token has expired' };
    expect(verify(sign({ caller: anonymous })).caller).toEqual(anonymous);
  });

  it('survives the JSON round trip of the operation between gateway and subgraph', () => {
    const parsed = JSON.parse(JSON.stringify({ ...operation, variables: { b: [1, 'x'], c: null, d: undefined } }));
    expect(() => verify(sign({ operation: { ...operation, variables: { b: [1, 'x'], c: null, d: undefined } } }), 1_000_000, parsed)).not.toThrow();
  });

  it('refuses missing, forged, altered, misdirected, stale and re-used signatures', () => {
    const headers = sign();
    const cases: Record<string, [Record<string, string>, object?]> = {
      missing: [{}],
      forged: [sign({}, 1_000_000, 'another secret, just as long as it')],
      alteredCaller: [{ ...headers, [HEADER.caller]: Buffer.from(JSON.stringify({ u: 'u-2', r: ['ADMIN'] })).toString('base64url') }],
      alteredCorrelation: [{ ...headers, [HEADER.correlationId]: 'other-12345678' }],
      forAnotherSubgraph: [sign({ audience: 'billing' })],
      anotherQuery: [headers, { query: 'mutation { deleteAccount { deletedUserId } }', variables: { a: 1 } }],
      otherVariables: [headers, { query: operation.query, variables: { a: 2 } }],
    };
    for (const [name, [h, op]] of Object.entries(cases)) {
      expect(() => verify(h, 1_000_000, op ?? operation), name).toThrow(InternalAuthError);
    }
    expect(() => verify(headers, 1_000_000 + 31_000)).toThrow('stale');
  });
});
