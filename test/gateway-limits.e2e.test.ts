import { parse, type OperationDefinitionNode } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { estimateCost } from '../gateway/operation-limits.js';
import { registerMember } from './support/people.js';
import { supergraphApiSchema } from './support/clients.js';
import { startTestStack, type TestStack } from './support/stack.js';

/**
 * The gateway's operation limits at their production defaults (platform/config.ts), through
 * HTTP: at each limit an operation runs; one step over, it is refused unrun with its own code.
 */
let stack: TestStack;
let token: string;

beforeAll(async () => {
  // Per-operation timeouts by name: `Hasty` may take 1 ms (no federated operation is that fast).
  stack = await startTestStack({ env: { OPERATION_TIMEOUTS_MS: 'Hasty=1' } });
  ({ token } = await registerMember(stack, 'Lim'));
});
afterAll(async () => {
  await stack?.close();
});

const codesOf = (res: { errors?: { extensions?: { code?: string } }[] }) => (res.errors ?? []).map((e) => e.extensions?.code);
const times = (n: number, f: (i: number) => string) => Array.from({ length: n }, (_, i) => f(i)).join(' ');

/** `{ me { stories { edges { node { author { stories … } } } } } }`, `depth` levels of fields. */
function nested(depth: number): string {
  const steps = ['stories(first: 1)', 'edges', 'node', 'author'];
  const path = ['me', ...Array.from({ length: depth - 2 }, (_, i) => steps[i % steps.length]!)];
  const leaf = path.at(-1) === 'edges' ? 'cursor' : path.at(-1)!.startsWith('stories') ? 'totalCount' : 'id';
  return `{ ${path.join(' { ')} { ${leaf} ${'} '.repeat(path.length)}}`;
}

describe('operation limits at their defaults', () => {
  it('depth: 12 levels run, 13 are refused with DEPTH_LIMIT_EXCEEDED', async () => {
    const under = await stack.gql(nested(12), {}, { token });
    expect([under.status, under.errors]).toEqual([200, undefined]);
    const over = await stack.gql(nested(13), {}, { token });
    expect([over.status, codesOf(over)]).toEqual([400, ['DEPTH_LIMIT_EXCEEDED']]);
  });

  it('aliases: 30 run, 31 are refused with ALIAS_LIMIT_EXCEEDED', async () => {
    const query = (n: number) => `{ me { ${times(n, (i) => `n${i}: displayName`)} } }`;
    const under = await stack.gql(query(30), {}, { token });
    expect([under.status, under.errors, Object.keys(under.data.me).length]).toEqual([200, undefined, 30]);
    const over = await stack.gql(query(31), {}, { token });
    expect([over.status, codesOf(over)]).toEqual([400, ['ALIAS_LIMIT_EXCEEDED']]);
  });

  it('root fields: 20 run, 21 are refused with ROOT_FIELD_LIMIT_EXCEEDED', async () => {
    const query = (n: number) => `{ plans { tier } ${times(n - 1, (i) => `p${i}: plans { name }`)} }`;
    // 19 aliases: the alias limit (30) is not what is tested here.
    const under = await stack.gql(query(20));
    expect([under.status, under.errors, Object.keys(under.data).length]).toEqual([200, undefined, 20]);
    const over = await stack.gql(query(21));
    expect([over.status, codesOf(over)]).toEqual([400, ['ROOT_FIELD_LIMIT_EXCEEDED']]);
  });

  it('tokens: 2,000 run, 2,001 are refused with TOKEN_LIMIT_EXCEEDED', async () => {
    // `{ plans { … } }` is 5 tokens; `tier @skip(if: false)` 8 more, `tier` 1. Not 2,000 bare
    // `tier`s: graphql-js aborts validating that many copies of one field (it compares pairs).
    const query = (tokens: number) => `{ plans { ${'tier @skip(if: false) '.repeat(Math.floor((tokens - 5) / 8))}${'tier '.repeat((tokens - 5) % 8)}} }`;
    const under = await stack.gql(query(2000));
    expect([under.status, under.errors]).toEqual([200, undefined]);
    const over = await stack.gql(query(2001));
    expect([over.status, codesOf(over)]).toEqual([400, ['TOKEN_LIMIT_EXCEEDED']]);
  });

  it('cost: the largest page size within 50,000 runs, one more is refused with COST_LIMIT_EXCEEDED', async () => {
    // Three nested pages: the number of objects grows with the cube of `first`.
    const query = `query Feed($first: Int) { publishedStories(first: $first) { edges { node { author { stories(first: $first) { edges { node { author { stories(first: $first) { edges { node { id } } } } } } } } } } } }`;
    const document = parse(query);
    const cost = (first: number) => estimateCost(supergraphApiSchema(), document, document.definitions[0] as OperationDefinitionNode, { first });
    let first = 1;
    while (cost(first + 1) <= 50_000) first++;
    expect(first).toBeGreaterThan(10);
    const under = await stack.gql(query, { first });
    expect([under.status, under.errors]).toEqual([200, undefined]);
    const over = await stack.gql(query, { first: first + 1 });
    expect([over.status, codesOf(over), over.errors?.[0]?.message]).toEqual([400, ['COST_LIMIT_EXCEEDED'], expect.stringContaining('50000')]);
  });

  it('variables: 2 MiB of JSON are taken, one byte more is refused with VARIABLES_TOO_LARGE (413)', async () => {
    // Variables the operation does not declare are ignored by GraphQL, but count for the limit.
    const padded = (bytes: number) => ({ pad: 'x'.repeat(bytes - '{"pad":""}'.length) });
    const under = await stack.gql('{ plans { tier } }', padded(2 * 1024 * 1024));
    expect([under.status, under.errors]).toEqual([200, undefined]);
    const over = await stack.gql('{ plans { tier } }', padded(2 * 1024 * 1024 + 1));
    expect([over.status, codesOf(over)]).toEqual([413, ['VARIABLES_TOO_LARGE']]);
  });

  it('time: an operation over its own deadline answers OPERATION_TIMEOUT; the same under the default runs', async () => {
    const hasty = await stack.gql('query Hasty { me { id stories(first: 5) { totalCount } } }', {}, { token });
    expect([hasty.status, hasty.data, codesOf(hasty)]).toEqual([200, null, ['OPERATION_TIMEOUT']]);
    const patient = await stack.gql('query Patient { me { id stories(first: 5) { totalCount } } }', {}, { token });
    expect([patient.status, patient.errors, patient.data.me.stories.totalCount]).toEqual([200, undefined, 0]);
  });

  it('a refused operation reaches no subgraph', async () => {
    const fetches = async () => {
      const text = await (await fetch(stack.app.gatewayUrl.replace('/graphql', '/metrics'))).text();
      return text
        .split('\n')
        .filter((line) => line.startsWith('storyloom_gateway_subgraph_fetches_total'))
        .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
    };
    const before = await fetches();
    const refused = await stack.gql(nested(13), {}, { token });
    expect(codesOf(refused)).toEqual(['DEPTH_LIMIT_EXCEEDED']);
    expect(await fetches()).toBe(before);
  });
});

describe('a subscription sent over HTTP', () => {
  it('is refused with 400 BAD_REQUEST, pointing at graphql-ws', async () => {
    const res = await stack.gql('subscription { narrationJobUpdated(jobId: "00000000-0000-4000-8000-000000000000") { id } }', {}, { token });
    expect([res.status, codesOf(res), res.errors?.[0]?.message]).toEqual([400, ['BAD_REQUEST'], expect.stringContaining('graphql-ws')]);
  });
});
