import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

/**
 * The gateway tells subgraphs who is calling in headers signed with the internal secret.
 * A subgraph trusts only these headers, never a bearer token, so nobody reaches a subgraph
 * around the gateway: without the secret no valid signature can be made.
 *
 * The signature covers the timestamp, the subgraph it is meant for, the correlation id and
 * the caller. It is accepted only by that subgraph and only within MAX_SKEW_MS, so a captured
 * header set can be neither replayed for long nor pointed at another subgraph.
 */
export type Role = 'USER' | 'ADMIN' | 'GUEST';

export interface Caller {
  userId: string | null;
  roles: Role[];
  /**
   * Why a presented access token was not accepted (expired, invalid). The request still runs
   * anonymously, so refreshSession or logIn work with a stale token attached; anything that
   * needs a user answers UNAUTHENTICATED with this reason.
   */
  authError?: string;
}

export const ANONYMOUS: Caller = Object.freeze({ userId: null, roles: [] }) as Caller;

export const HEADER = {
  caller: 'x-storyloom-caller',
  timestamp: 'x-storyloom-timestamp',
  signature: 'x-storyloom-signature',
  correlationId: 'x-correlation-id',
} as const;

const MAX_SKEW_MS = 30_000;

function sign(secret: string, timestamp: string, audience: string, correlationId: string, caller: string): Buffer {
  return createHmac('sha256', secret).update(`${timestamp}\n${audience}\n${correlationId}\n${caller}`).digest();
}

/** Headers that let `audience` (a subgraph name) trust `caller`. */
export function signCaller(secret: string, audience: string, caller: Caller, correlationId: string, now = Date.now()): Record<string, string> {
  const encoded = Buffer.from(JSON.stringify({ u: caller.userId, r: caller.roles, e: caller.authError })).toString('base64url');
  const timestamp = String(now);
  return {
    [HEADER.caller]: encoded,
    [HEADER.timestamp]: timestamp,
    [HEADER.correlationId]: correlationId,
    [HEADER.signature]: sign(secret, timestamp, audience, correlationId, encoded).toString('base64url'),
  };
}

export class InternalAuthError extends Error {}

const header = (headers: IncomingHttpHeaders, name: string): string | undefined => {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
};

/** Returns the caller the gateway vouched for to `audience`, or throws InternalAuthError. */
export function verifyCaller(
  secret: string,
  audience: string,
  headers: IncomingHttpHeaders,
  now = Date.now(),
): { caller: Caller; correlationId: string } {
  const encoded = header(headers, HEADER.caller);
  const timestamp = header(headers, HEADER.timestamp);
  const signature = header(headers, HEADER.signature);
  const correlationId = header(headers, HEADER.correlationId) ?? '';
  if (!encoded || !timestamp || !signature) throw new InternalAuthError('missing internal signature');
  const age = Math.abs(now - Number(timestamp));
  if (!Number.isFinite(age) || age > MAX_SKEW_MS) throw new InternalAuthError('stale internal signature');
  const expected = sign(secret, timestamp, audience, correlationId, encoded);
  const given = Buffer.from(signature, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new InternalAuthError('invalid internal signature');
  }
  const parsed = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8')) as { u: string | null; r: Role[]; e?: string };
  const caller: Caller = { userId: parsed.u, roles: parsed.r, ...(parsed.e ? { authError: parsed.e } : {}) };
  return { caller, correlationId: correlationId || randomUUID() };
}
