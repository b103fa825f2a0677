import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

/**
 * The gateway tells subgraphs who is calling in headers signed with the internal secret.
 * A subgraph trusts only these headers, never a bearer token, so nobody reaches a subgraph
 * around the gateway: without the secret no valid signature can be made.
 *
 * The signature covers the timestamp, the correlation id and the caller, and is only accepted
 * within MAX_SKEW_MS, so a captured header set cannot be replayed for long.
 */
export type Role = 'USER' | 'ADMIN' | 'GUEST';

export interface Caller {
  userId: string | null;
  roles: Role[];
}

export const ANONYMOUS: Caller = Object.freeze({ userId: null, roles: [] }) as Caller;

export const HEADER = {
  caller: 'x-storyloom-caller',
  timestamp: 'x-storyloom-timestamp',
  signature: 'x-storyloom-signature',
  correlationId: 'x-correlation-id',
} as const;

const MAX_SKEW_MS = 60_000;

function sign(secret: string, timestamp: string, correlationId: string, caller: string): Buffer {
  return createHmac('sha256', secret).update(`${timestamp}\n${correlationId}\n${caller}`).digest();
}

export function signCaller(secret: string, caller: Caller, correlationId: string, now = Date.now()): Record<string, string> {
  const encoded = Buffer.from(JSON.stringify({ u: caller.userId, r: caller.roles })).toString('base64url');
  const timestamp = String(now);
  return {
    [HEADER.caller]: encoded,
    [HEADER.timestamp]: timestamp,
    [HEADER.correlationId]: correlationId,
    [HEADER.signature]: sign(secret, timestamp, correlationId, encoded).toString('base64url'),
  };
}

export class InternalAuthError extends Error {}

const header = (headers: IncomingHttpHeaders | Headers, name: string): string | undefined => {
  const value = headers instanceof Headers ? headers.get(name) : headers[name];
  return Array.isArray(value) ? value[0] : (value ?? undefined);
};

/** Returns the caller the gateway vouched for, or throws InternalAuthError. */
export function verifyCaller(
  secret: string,
  headers: IncomingHttpHeaders | Headers,
  now = Date.now(),
): { caller: Caller; correlationId: string } {
  const encoded = header(headers, HEADER.caller);
  const timestamp = header(headers, HEADER.timestamp);
  const signature = header(headers, HEADER.signature);
  const correlationId = header(headers, HEADER.correlationId) ?? '';
  if (!encoded || !timestamp || !signature) throw new InternalAuthError('missing internal signature');
  const age = Math.abs(now - Number(timestamp));
  if (!Number.isFinite(age) || age > MAX_SKEW_MS) throw new InternalAuthError('stale internal signature');
  const expected = sign(secret, timestamp, correlationId, encoded);
  const given = Buffer.from(signature, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new InternalAuthError('invalid internal signature');
  }
  const parsed = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8')) as { u: string | null; r: Role[] };
  return { caller: { userId: parsed.u, roles: parsed.r }, correlationId: correlationId || randomUUID() };
}
