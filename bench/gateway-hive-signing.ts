/**
 * A Hive Gateway plugin that signs each subgraph request the way our gateway does
 * (platform/internal-auth.ts): our subgraphs trust nothing else. The signature binds the exact
 * query text and variables of that request, so it is made in onFetch, on the body Hive is about
 * to send (after its planner, batching and printing), for the subgraph the URL belongs to.
 *
 * Every call is signed as the anonymous caller: this plugin verifies no token. The bench's
 * operations are public ones, which both gateways answer anonymously; a request carrying an
 * Authorization header is refused rather than silently run as someone else.
 */
import { randomUUID } from 'node:crypto';
import type { GatewayPlugin } from '@graphql-hive/gateway-runtime';
import { ANONYMOUS, signCaller } from '../platform/internal-auth.js';

export interface SigningOptions {
  internalSecret: string;
  /** Each subgraph's GraphQL endpoint (…/graphql), by subgraph name: the audience of its signatures. */
  endpoints: Record<string, string>;
}

export function useStoryloomSigning(options: SigningOptions): GatewayPlugin {
  const audienceOf = new Map(Object.entries(options.endpoints).map(([name, endpoint]) => [endpoint, name]));
  // One correlation id per client request, shared by its subgraph calls, as our gateway does.
  const correlationIds = new WeakMap<object, string>();
  return {
    onRequest({ request, endResponse, fetchAPI }) {
      if (!request.headers.has('authorization')) return;
      const body = JSON.stringify({ errors: [{ message: 'This bench gateway signs every call as anonymous and verifies no token', extensions: { code: 'UNAUTHENTICATED' } }] });
      endResponse(new fetchAPI.Response(body, { status: 401, headers: { 'content-type': 'application/json' } }));
    },
    onFetch({ url, options: init, setOptions, context }) {
      const audience = audienceOf.get(url);
      if (!audience) return;
      const body: { query?: unknown; variables?: unknown } = typeof init.body === 'string' ? JSON.parse(init.body) : {};
      let correlationId = correlationIds.get(context);
      if (!correlationId) correlationIds.set(context, (correlationId = randomUUID()));
      const signed = signCaller(options.internalSecret, { audience, caller: ANONYMOUS, correlationId, operation: { query: body.query, variables: body.variables } });
      setOptions({ ...init, headers: { ...init.headers, ...signed } });
    },
  };
}
