import { randomUUID } from 'node:crypto';
import { signCaller, type Caller } from '../internal-auth.js';
import type { Topology } from './module.js';
import { traceHeaders } from '../telemetry/tracing.js';

export interface InternalQuery {
  /** The subgraph asked, by name. */
  subgraph: string;
  /** Who the request is made for: the other subgraph applies its own rules to this caller. */
  caller: Caller;
  query: string;
  variables?: Record<string, unknown>;
  correlationId?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface InternalAnswer<T> {
  data: T | null;
  errors: { message: string; extensions?: { code?: string } }[];
}

/**
 * One GraphQL request from a subgraph to another, signed like the gateway signs them: what a
 * worker needs from another domain when it runs (a story's text, its latest narration), read
 * with the job owner's identity so every rule of the owning subgraph holds. Throws when the
 * subgraph cannot be reached or answers other than 200; GraphQL errors are the caller's to read.
 */
export async function querySubgraph<T>(topology: Topology, internalSecret: string, request: InternalQuery): Promise<InternalAnswer<T>> {
  const url = topology.subgraphs().find((s) => s.name === request.subgraph)?.url;
  if (!url) throw new Error(`the ${request.subgraph} subgraph is not reachable (not in the topology)`);
  const operation = { query: request.query, variables: request.variables ?? {} };
  const headers = signCaller(internalSecret, { audience: request.subgraph, caller: request.caller, correlationId: request.correlationId ?? randomUUID(), operation });
  const timeout = AbortSignal.timeout(request.timeoutMs ?? 10_000);
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    // The asked subgraph's span joins the asking request's (or consumer's) trace.
    headers: { 'content-type': 'application/json', ...headers, ...traceHeaders() },
    body: JSON.stringify(operation),
    signal: request.signal ? AbortSignal.any([request.signal, timeout]) : timeout,
  });
  if (!response.ok) {
    // Not read: cancelled, or the connection stays taken until the body is collected.
    await response.body?.cancel().catch(() => {});
    throw new Error(`the ${request.subgraph} subgraph answered ${response.status}`);
  }
  const body = (await response.json()) as { data?: T | null; errors?: InternalAnswer<T>['errors'] };
  return { data: body.data ?? null, errors: body.errors ?? [] };
}

const DISPLAY_NAME = `query DisplayName($reps: [_Any!]!) { _entities(representations: $reps) { ... on User { displayName } } }`;

/**
 * A user's display name, from identity (which owns the User entity every subgraph extends),
 * asked as `caller`; null when identity does not know the user (a deleted account).
 */
export async function displayNameOf(topology: Topology, internalSecret: string, userId: string, caller: Caller, correlationId?: string): Promise<string | null> {
  const answer = await querySubgraph<{ _entities: ({ displayName?: string } | null)[] }>(topology, internalSecret, {
    subgraph: 'identity',
    caller,
    correlationId,
    query: DISPLAY_NAME,
    variables: { reps: [{ __typename: 'User', id: userId }] },
  });
  return answer.data?._entities[0]?.displayName ?? null;
}
