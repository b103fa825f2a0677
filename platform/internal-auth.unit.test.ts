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

  it('round-trips a guest caller, and a service caller, and encodes a caller without a guest as before', () => {
    const guest: Caller = { userId: null, roles: ['GUEST'], guest: { participantId: 'p-1', templateId: 't-1' } };
    expect(verify(sign({ caller: guest })).caller).toEqual(guest);
    const service: Caller = { userId: null, roles: ['SERVICE'] };
    expect(verify(sign({ caller: service })).caller).toEqual(service);
    // No `g` key at all: subgraphs that predate guests read the same header as before.
    expect(JSON.parse(Buffer.from(sign()[HEADER.caller]!, 'base64url').toString())).toEqual({ u: 'u-1', r: ['USER'] });
  });

  it('refuses a guest caller whose scope or identity was altered after signing', () => {
    const guest: Caller = { userId: null, roles: ['GUEST'], guest: { participantId: 'p-1', templateId: 't-1' } };
    const headers = sign({ caller: guest });
    const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const cases: Record<string, object> = {
      otherTemplate: { u: null, r: ['GUEST'], g: ['p-1', 't-2'] },
      otherParticipant: { u: null, r: ['GUEST'], g: ['p-2', 't-1'] },
      scopeDropped: { u: null, r: ['GUEST'] },
      madeService: { u: null, r: ['SERVICE'], g: ['p-1', 't-1'] },
    };
    for (const [name, caller] of Object.entries(cases)) {
      expect(() => verify({ ...headers, [HEADER.caller]: encode(caller) }), name).toThrow('invalid internal signature');
    }
    // A guest scope added to a signed user caller fails too.
    expect(() => verify({ ...sign(), [HEADER.caller]: encode({ u: 'u-1', r: ['USER'], g: ['p-1', 't-1'] }) })).toThrow('invalid internal signature');
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
