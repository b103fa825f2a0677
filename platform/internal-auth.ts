import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

/**
 * The gateway tells subgraphs who is calling in headers signed with the internal secret.
 * A subgraph trusts only these headers, never a bearer token, so nobody reaches a subgraph
 * around the gateway: without the secret no valid signature can be made.
 *
 * The signature covers the timestamp, the subgraph it is meant for, the correlation id, the
 * caller and a digest of the operation (query and variables). It is accepted only by that
 * subgraph, only within MAX_SKEW_MS and only with that operation, so a captured header set can
 * be neither replayed for long, nor pointed at another subgraph, nor used for another operation.
 */
/**
 * USER and ADMIN come from an account's access token; GUEST from a guest session's token (an
 * invitee of a collaboration without an account). SERVICE never comes from a token (the
 * gateway drops it): a subgraph sets it when it calls another for itself, not for a person.
 */
export type Role = 'USER' | 'ADMIN' | 'GUEST' | 'SERVICE';

/** Who a GUEST caller is: one participant of one roleplay template, and nothing beyond it. */
export interface GuestScope {
  participantId: string;
  templateId: string;
}

export interface Caller {
  userId: string | null;
  roles: Role[];
  /**
   * Why a presented access token was not accepted (expired, invalid). The request still runs
   * anonymously, so refreshSession or logIn work with a stale token attached; anything that
   * needs a user answers UNAUTHENTICATED with this reason.
   */
  authError?: string;
  /** Set only with the GUEST role (userId is then null): the one template the session is for. */
  guest?: GuestScope;
}

export const ANONYMOUS: Caller = Object.freeze({ userId: null, roles: [] }) as Caller;

export const HEADER = {
  caller: 'x-storyloom-caller',
  timestamp: 'x-storyloom-timestamp',
  signature: 'x-storyloom-signature',
  correlationId: 'x-correlation-id',
} as const;

const MAX_SKEW_MS = 30_000;

/** The operation a signature is bound to, as the gateway sends it and the subgraph parses it. */
export interface SignedOperation {
  query?: unknown;
  variables?: unknown;
}

/** Both sides hash the same JSON: the subgraph re-serialises what it parsed from the gateway's JSON. */
function operationDigest(operation: SignedOperation | undefined): string {
  const query = typeof operation?.query === 'string' ? operation.query : '';
  return createHash('sha256').update(`${query}\n${JSON.stringify(operation?.variables ?? null)}`).digest('base64url');
}

interface Signed {
  timestamp: string;
  audience: string;
  correlationId: string;
  caller: string;
  digest: string;
}

function sign(secret: string, s: Signed): Buffer {
  return createHmac('sha256', secret).update(`${s.timestamp}\n${s.audience}\n${s.correlationId}\n${s.caller}\n${s.digest}`).digest();
}

export interface SignRequest {
  /** The subgraph the request is for. */
  audience: string;
  caller: Caller;
  correlationId: string;
  operation: SignedOperation;
}

/** The caller as the header carries it: short keys, since it travels on every subgraph request. */
interface EncodedCaller {
  u: string | null;
  r: Role[];
  e?: string;
  /** The guest scope as [participantId, templateId]. */
  g?: [string, string];
}

/** Headers that let one subgraph trust `caller` for one operation. */
export function signCaller(secret: string, request: SignRequest, now = Date.now()): Record<string, string> {
  const { userId, roles, authError, guest } = request.caller;
  // Undefined fields drop out of the JSON, so a caller without a guest scope encodes as before.
  const encoded: EncodedCaller = { u: userId, r: roles, e: authError, g: guest ? [guest.participantId, guest.templateId] : undefined };
  const caller = Buffer.from(JSON.stringify(encoded)).toString('base64url');
  const timestamp = String(now);
  const signature = sign(secret, { timestamp, audience: request.audience, correlationId: request.correlationId, caller, digest: operationDigest(request.operation) });
  return {
    [HEADER.caller]: caller,
    [HEADER.timestamp]: timestamp,
    [HEADER.correlationId]: request.correlationId,
    [HEADER.signature]: signature.toString('base64url'),
  };
}

export class InternalAuthError extends Error {}

const header = (headers: IncomingHttpHeaders, name: string): string | undefined => {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
};

export interface VerifyRequest {
  audience: string;
  headers: IncomingHttpHeaders;
  operation: SignedOperation | undefined;
}

/** Returns the caller the gateway vouched for to this subgraph and operation, or throws InternalAuthError. */
export function verifyCaller(secret: string, request: VerifyRequest, now = Date.now()): { caller: Caller; correlationId: string } {
  const { headers, audience } = request;
  const encoded = header(headers, HEADER.caller);
  const timestamp = header(headers, HEADER.timestamp);
  const signature = header(headers, HEADER.signature);
  const correlationId = header(headers, HEADER.correlationId) ?? '';
  if (!encoded || !timestamp || !signature) throw new InternalAuthError('missing internal signature');
  const age = Math.abs(now - Number(timestamp));
  if (!Number.isFinite(age) || age > MAX_SKEW_MS) throw new InternalAuthError('stale internal signature');
  const expected = sign(secret, { timestamp, audience, correlationId, caller: encoded, digest: operationDigest(request.operation) });
  const given = Buffer.from(signature, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new InternalAuthError('invalid internal signature');
  }
  const parsed = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8')) as EncodedCaller;
  const caller: Caller = {
    userId: parsed.u,
    roles: parsed.r,
    ...(parsed.e ? { authError: parsed.e } : {}),
    ...(parsed.g ? { guest: { participantId: parsed.g[0], templateId: parsed.g[1] } } : {}),
  };
  return { caller, correlationId: correlationId || randomUUID() };
}
