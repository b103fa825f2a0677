import { randomUUID } from 'node:crypto';
import type { Client } from 'graphql-ws';
import {
  getIntrospectionQuery,
  isEnumType,
  isInputObjectType,
  isListType,
  isNonNullType,
  Kind,
  parse,
  typeFromAST,
  type GraphQLInputType,
  type GraphQLSchema,
  type OperationDefinitionNode,
} from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadManifest, operationId, PERSISTED_QUERY_NOT_FOUND, PERSISTED_REFUSALS, type ManifestOperation } from '../gateway/persisted-operations.js';
import { supergraphApiSchema } from './support/clients.js';
import { registerMember } from './support/people.js';
import { startTestStack, type TestStack } from './support/stack.js';
import { wsClients } from './support/subscriptions.js';

/**
 * Persisted operations through the whole stack: PERSISTED_OPERATIONS=only (the mobile apps'
 * production setting) serves the manifest's operations, by id or as their very text, and
 * introspection, and nothing else; the default `allow` mode adds Apollo's APQ.
 */
const manifest = loadManifest();
const byName = (name: string): ManifestOperation => {
  const op = manifest.operations.find((o) => o.name === name);
  if (!op) throw new Error(`${name} is not in the manifest`);
  return op;
};
const PLANS = byName('Plans');
const ME = byName('Me');
const UNLISTED = 'query Unlisted { plans { tier priceCents } }';

interface RawResponse {
  status: number;
  headers: Headers;
  body: { data?: any; errors?: { message: string; extensions?: { code?: string } }[] };
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<RawResponse> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: res.status, headers: res.headers, body: (await res.json()) as RawResponse['body'] };
}

async function get(url: string, params: Record<string, string>, headers: Record<string, string> = { 'apollo-require-preflight': 'true' }): Promise<RawResponse> {
  const res = await fetch(`${url}?${new URLSearchParams(params)}`, { headers });
  return { status: res.status, headers: res.headers, body: (await res.json()) as RawResponse['body'] };
}

const apq = (sha256Hash: string) => ({ persistedQuery: { version: 1, sha256Hash } });
const codesOf = (res: { body: RawResponse['body'] }) => (res.body.errors ?? []).map((e) => e.extensions?.code);

/** A valid value of each scalar the API schema has; a new scalar fails the test until it is listed here. */
const SCALAR_SAMPLES: Record<string, () => unknown> = {
  ID: () => randomUUID(),
  String: () => `s-${randomUUID().slice(0, 8)}`,
  Int: () => 1,
  Float: () => 1.5,
  Boolean: () => true,
  DateTime: () => new Date().toISOString(),
  JSON: () => ({}),
};

/** A value the type accepts: enums their first value, input objects their required fields. */
function sampleOf(type: GraphQLInputType): unknown {
  if (isNonNullType(type)) return sampleOf(type.ofType);
  if (isListType(type)) return [sampleOf(type.ofType)];
  if (isEnumType(type)) return type.getValues()[0]!.name;
  if (isInputObjectType(type)) {
    const required = Object.values(type.getFields()).filter((field) => isNonNullType(field.type) && field.defaultValue === undefined);
    return Object.fromEntries(required.map((field) => [field.name, sampleOf(field.type)]));
  }
  const sample = SCALAR_SAMPLES[type.name];
  if (!sample) throw new Error(`no sample value for the scalar ${type.name}: add one to SCALAR_SAMPLES`);
  return sample();
}

/** Every variable the operation declares, with a value of its type. */
function variablesFor(schema: GraphQLSchema, body: string): Record<string, unknown> {
  const operation = parse(body).definitions.find((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION)!;
  const variables: Record<string, unknown> = {};
  for (const definition of operation.variableDefinitions ?? []) {
    const type = typeFromAST(schema, definition.type as never) as GraphQLInputType | undefined;
    if (!type) throw new Error(`${operation.name?.value}: $${definition.variable.name.value} has a type the API schema lacks`);
    variables[definition.variable.name.value] = sampleOf(type);
  }
  return variables;
}

/** Codes that mean the request was refused before it ran, not answered by resolvers. */
const REQUEST_ERROR_CODES = new Set<string | undefined>([
  ...Object.values(PERSISTED_REFUSALS).map((refusal) => refusal.code),
  PERSISTED_QUERY_NOT_FOUND,
  'PERSISTED_QUERY_NOT_SUPPORTED',
  'GRAPHQL_PARSE_FAILED',
  'GRAPHQL_VALIDATION_FAILED',
  'BAD_REQUEST',
]);
// graphql-js's variable coercion messages (getVariableValues), whichever server they come from.
const COERCION = /^Variable "\$\w+" (got invalid value|of required type|of non-null type)/;

/** What is wrong with an answer that should be an execution result (resolver errors are fine); null when nothing. */
function notExecuted(res: RawResponse): string | null {
  const errors = res.body.errors ?? [];
  const refused = errors.filter((e) => REQUEST_ERROR_CODES.has(e.extensions?.code) || COERCION.test(e.message));
  if (res.status !== 200 || !('data' in res.body) || refused.length) return `${res.status} ${JSON.stringify(res.body.errors ?? 'no data')}`;
  return null;
}

/** The first thing a subscription hears within `ms`: its errors, a result, its end, or nothing yet (it runs). */
function firstOutcome(client: Client, payload: Record<string, unknown>, ms = 3_000) {
  return new Promise<{ kind: 'error'; errors: unknown } | { kind: 'next' } | { kind: 'complete' } | { kind: 'open' }>((resolve) => {
    const timer = setTimeout(() => {
      unsubscribe();
      resolve({ kind: 'open' });
    }, ms);
    const settle = (outcome: Parameters<typeof resolve>[0]) => {
      clearTimeout(timer);
      unsubscribe();
      resolve(outcome);
    };
    const unsubscribe = client.subscribe(payload as never, {
      next: () => settle({ kind: 'next' }),
      error: (errors) => settle({ kind: 'error', errors }),
      complete: () => settle({ kind: 'complete' }),
    });
  });
}
const wsCodes = (outcome: Awaited<ReturnType<typeof firstOutcome>>) =>
  outcome.kind === 'error' && Array.isArray(outcome.errors) ? outcome.errors.map((e: { extensions?: { code?: string } }) => e.extensions?.code) : [];

describe('PERSISTED_OPERATIONS=only', () => {
  let stack: TestStack;
  let url: string;
  const ws = wsClients(() => url);

  beforeAll(async () => {
    stack = await startTestStack({ env: { PERSISTED_OPERATIONS: 'only' } });
    url = stack.app.gatewayUrl;
  });
  afterAll(async () => {
    await ws.disposeAll();
    await stack?.close();
  });

  it('refuses a document not in the manifest (403 QUERY_NOT_IN_SAFELIST), and an unknown id (404 PERSISTED_QUERY_NOT_IN_LIST)', async () => {
    const unlisted = await post(url, { query: UNLISTED });
    expect([unlisted.status, codesOf(unlisted), unlisted.body.data]).toEqual([403, ['QUERY_NOT_IN_SAFELIST'], undefined]);
    const unknownId = operationId(UNLISTED);
    for (const body of [{ documentId: `sha256:${unknownId}` }, { extensions: apq(unknownId) }]) {
      const res = await post(url, body);
      expect([res.status, codesOf(res)], JSON.stringify(body)).toEqual([404, ['PERSISTED_QUERY_NOT_IN_LIST']]);
    }
    // APQ's registration (the id with its document) is no way in.
    const registration = await post(url, { query: UNLISTED, extensions: apq(unknownId) });
    expect([registration.status, codesOf(registration)]).toEqual([403, ['QUERY_NOT_IN_SAFELIST']]);
    expect(codesOf(await post(url, { extensions: apq(unknownId) }))).toEqual(['PERSISTED_QUERY_NOT_IN_LIST']);
    // A listed id with another document is a mismatch, not a way to run that document.
    const mismatch = await post(url, { query: UNLISTED, documentId: `sha256:${PLANS.id}` });
    expect([mismatch.status, codesOf(mismatch)]).toEqual([400, ['PERSISTED_QUERY_HASH_MISMATCH']]);
    // Also with a signed-in caller, and over GET.
    const member = await registerMember(stack, 'Ola');
    expect((await post(url, { query: UNLISTED }, { authorization: `Bearer ${member.token}` })).status).toBe(403);
    expect((await get(url, { query: UNLISTED })).status).toBe(403);
  });

  it('serves every query and mutation of the manifest by id, as documentId and as extensions.persistedQuery, with valid variables', async () => {
    // Register is a manifest operation: sent as its text, it runs.
    const member = await registerMember(stack, 'Pia');
    const schema = supergraphApiSchema();
    // Last, the operations that end the member's session or account: the others run signed in.
    const last = new Set(['LogOut', 'DeleteAccount']);
    const operations = manifest.operations.filter((op) => op.type !== 'subscription').sort((a, b) => Number(last.has(a.name)) - Number(last.has(b.name)));
    expect(operations.length).toBe(manifest.operations.length - 2);
    const problems: string[] = [];
    for (const op of operations) {
      const variables = variablesFor(schema, op.body);
      for (const [via, body] of [
        ['documentId', { documentId: `sha256:${op.id}`, variables }],
        ['extensions.persistedQuery', { extensions: apq(op.id), variables }],
      ] as const) {
        const res = await post(url, body, { authorization: `Bearer ${member.token}` });
        const problem = notExecuted(res);
        if (problem) problems.push(`${op.name} by ${via} with ${JSON.stringify(variables)}: ${problem}`);
      }
    }
    expect(problems).toEqual([]);
    // The check catches a variable the operation cannot take (an enum value that does not exist).
    const coercion = await post(url, { documentId: `sha256:${byName('ChangePlan').id}`, variables: { tier: 'DIAMOND' } }, { authorization: `Bearer ${member.token}` });
    expect(notExecuted(coercion)).toMatch(/^400 .*Variable \\"\$tier\\" got invalid value/);
  });

  it('runs what the ids name: the member themself, the plan catalogue', async () => {
    const member = await registerMember(stack, 'Quin');
    const me = await post(url, { documentId: `sha256:${ME.id}` }, { authorization: `Bearer ${member.token}` });
    expect(me.body.errors).toBeUndefined();
    expect(me.body.data.me).toMatchObject({ id: member.id, displayName: 'Quin' });
    const plans = await post(url, { extensions: apq(PLANS.id) });
    expect(plans.body.data.plans.map((p: { tier: string }) => p.tier)).toEqual(['FREE', 'SILVER', 'GOLD', 'PLATINUM']);
  });

  it("serves the manifest's two subscriptions by id over graphql-ws (query \"\"), refusing an unknown id or an unlisted document", async () => {
    const schema = supergraphApiSchema();
    const subscriptions = manifest.operations.filter((op) => op.type === 'subscription');
    expect(subscriptions.map((op) => op.name).sort()).toEqual(['NarrationProgress', 'VideoProgress']);
    const member = await registerMember(stack, 'Ria');
    const client = ws.client(member.token);
    for (const op of subscriptions) {
      const variables = variablesFor(schema, op.body);
      for (const payload of [
        { query: '', documentId: `sha256:${op.id}`, variables },
        { query: '', extensions: apq(op.id), variables },
      ]) {
        const outcome = await firstOutcome(client, payload);
        // A job nobody has is a resolver's answer (NOT_FOUND), not a refusal of the operation.
        const codes = wsCodes(outcome);
        expect(codes.filter((code) => REQUEST_ERROR_CODES.has(code)), `${op.name} ${JSON.stringify(payload)}: ${JSON.stringify(outcome)}`).toEqual([]);
        if (outcome.kind === 'error') expect(Array.isArray(outcome.errors), `${op.name}: the connection closed: ${JSON.stringify(outcome)}`).toBe(true);
      }
    }
    // The same connection refuses what is not listed, with the same codes as HTTP.
    const unknownId = operationId('subscription Unlisted($jobId: ID!) { narrationJobUpdated(jobId: $jobId) { id } }');
    expect(wsCodes(await firstOutcome(client, { query: '', extensions: apq(unknownId), variables: { jobId: randomUUID() } }))).toEqual(['PERSISTED_QUERY_NOT_IN_LIST']);
    expect(wsCodes(await firstOutcome(client, { query: 'subscription Unlisted($jobId: ID!) { narrationJobUpdated(jobId: $jobId) { id } }', variables: { jobId: randomUUID() } }))).toEqual([
      'QUERY_NOT_IN_SAFELIST',
    ]);
  });

  it('accepts a manifest operation sent as its full text, and as the same text formatted otherwise', async () => {
    const member = await registerMember(stack, 'Sol');
    const plans = await post(url, { query: PLANS.body });
    expect([plans.status, plans.body.errors, plans.body.data.plans.length]).toEqual([200, undefined, 4]);
    const me = await post(url, { query: ME.body }, { authorization: `Bearer ${member.token}` });
    expect([me.status, me.body.errors, me.body.data.me.id]).toEqual([200, undefined, member.id]);
    const reformatted = `# the plans screen\n${PLANS.body.replace(/\n\s*/g, ' ')}`;
    expect(operationId(reformatted)).not.toBe(PLANS.id);
    const res = await post(url, { query: reformatted });
    expect([res.status, res.body.errors, res.body.data?.plans.length]).toEqual([200, undefined, 4]);
  });

  it('serves introspection with the default PERSISTED_INTROSPECTION: a small query and GraphiQL’s full one', async () => {
    const small = await post(url, { query: '{ __schema { queryType { name } } }' });
    expect([small.status, small.body]).toEqual([200, { data: { __schema: { queryType: { name: 'Query' } } } }]);
    const full = await post(url, { query: getIntrospectionQuery() });
    expect([full.status, full.body.errors]).toEqual([200, undefined]);
    expect(full.body.data.__schema.types.map((t: { name: string }) => t.name)).toEqual(expect.arrayContaining(['Query', 'Mutation', 'Subscription', 'Story']));
    // Not a way around the list: a field next to the introspection is refused.
    expect((await post(url, { query: '{ __schema { queryType { name } } plans { tier } }' })).status).toBe(403);
  });

  it('serves a GET by id with extensions (or documentId) in the query string, with the CSRF-prevention header', async () => {
    for (const params of [{ extensions: JSON.stringify(apq(PLANS.id)) }, { documentId: `sha256:${PLANS.id}` }] as Record<string, string>[]) {
      const res = await get(url, params);
      expect([res.status, res.body.errors, res.body.data?.plans.length], JSON.stringify(params)).toEqual([200, undefined, 4]);
    }
    // Apollo's CSRF prevention still applies to a GET by id.
    const unflagged = await get(url, { extensions: JSON.stringify(apq(PLANS.id)) }, {});
    expect([unflagged.status, codesOf(unflagged)]).toEqual([400, ['BAD_REQUEST']]);
    // A mutation's id over GET resolves to a mutation, which GET does not run.
    const mutation = await get(url, { extensions: JSON.stringify(apq(byName('ArchiveStory').id)), variables: JSON.stringify({ id: randomUUID() }) });
    expect(mutation.status).toBe(405);
  });
});

describe('PERSISTED_OPERATIONS=allow (the default): APQ', () => {
  let stack: TestStack;
  let url: string;

  beforeAll(async () => {
    stack = await startTestStack();
    url = stack.app.gatewayUrl;
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('answers an unknown hash with PERSISTED_QUERY_NOT_FOUND, registers it with its document, then runs it by hash alone', async () => {
    const query = `query ApqPlans { plans { tier } } # ${randomUUID()}`;
    const hash = operationId(query);
    const unknown = await post(url, { extensions: apq(hash) });
    expect([unknown.status, codesOf(unknown)]).toEqual([200, [PERSISTED_QUERY_NOT_FOUND]]);
    // As documentId (the persisted documents proposal), an unknown id is asked of APQ too.
    expect(codesOf(await post(url, { documentId: `sha256:${hash}` }))).toEqual([PERSISTED_QUERY_NOT_FOUND]);
    const registered = await post(url, { query, extensions: apq(hash) });
    expect([registered.status, registered.body.errors, registered.body.data?.plans.length]).toEqual([200, undefined, 4]);
    for (const body of [{ extensions: apq(hash) }, { documentId: `sha256:${hash}` }]) {
      const res = await post(url, body);
      expect([res.status, res.body.errors, res.body.data?.plans.length], JSON.stringify(body)).toEqual([200, undefined, 4]);
    }
    const overGet = await get(url, { extensions: JSON.stringify(apq(hash)) });
    expect([overGet.status, overGet.body.data?.plans.length]).toEqual([200, 4]);
    // A hash with another document is refused, not registered under that hash.
    const mismatch = await post(url, { query: UNLISTED, extensions: apq(operationId(`${UNLISTED} # other`)) });
    expect(mismatch.status).toBe(400);
  });

  it('runs a manifest id without its document, never registered', async () => {
    for (const body of [{ documentId: `sha256:${PLANS.id}` }, { extensions: apq(PLANS.id) }, { documentId: PLANS.id }]) {
      const res = await post(url, body);
      expect([res.status, res.body.errors, res.body.data?.plans.length], JSON.stringify(body)).toEqual([200, undefined, 4]);
    }
    // And documents outside it still run as they are.
    const unlisted = await post(url, { query: UNLISTED });
    expect([unlisted.status, unlisted.body.errors]).toEqual([200, undefined]);
  });
});
