import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ApolloServer, HeaderMap, type ApolloServerOptionsWithGateway, type BaseContext } from '@apollo/server';
import { getIntrospectionQuery, parse, printSchema, type GraphQLError, type GraphQLFormattedError, type OperationDefinitionNode } from 'graphql';
import { HttpRefusal } from '../platform/http/graphql-http.js';
import { loadClientOperations, supergraphApiSchema } from '../test/support/clients.js';
import {
  DEFAULT_OPERATION_LIMITS,
  apolloLimits,
  checkVariablesSize,
  documentLimitErrors,
  estimateCost,
  parseWithinLimits,
  withOperationTimeouts,
  type OperationLimits,
} from './operation-limits.js';

const schema = supergraphApiSchema();
const defaults = DEFAULT_OPERATION_LIMITS;

const errorsOf = (source: string, variables: Record<string, unknown> = {}, limits: OperationLimits = defaults) =>
  documentLimitErrors(schema, parse(source), variables, limits).map((e) => ({ code: e.extensions.code, message: e.message }));
const costOf = (source: string, variables: Record<string, unknown> = {}) => {
  const document = parse(source);
  return estimateCost(schema, document, document.definitions[0] as OperationDefinitionNode, variables);
};
const repeat = (n: number, f: (i: number) => string) => Array.from({ length: n }, (_, i) => f(i + 1)).join(' ');

// me → stories → edges → node → author → stories …: one level deeper at every step.
const CYCLE = ['stories(first: 1)', 'edges', 'node', 'author'];
const LEAF: Record<string, string> = { me: 'id', 'stories(first: 1)': 'totalCount', edges: 'cursor', node: 'id', author: 'id' };
function deepQuery(depth: number): string {
  const path = ['me'];
  while (path.length < depth - 1) path.push(CYCLE[(path.length - 1) % CYCLE.length]!);
  return `{ ${path.map((f) => `${f} {`).join(' ')} ${LEAF[path.at(-1)!]} ${'}'.repeat(path.length)} }`;
}
const aliasesQuery = (n: number) => `{ me { ${repeat(n, (i) => `a${i}: id`)} } }`;
const rootFieldsQuery = (n: number) => `{ ${repeat(n, (i) => `r${i}: stockVoices`)} }`;
/** `{ me { id … } }`: 5 tokens and `ids` more. */
const tokensQuery = (ids: number) => `{ me { ${'id '.repeat(ids)}} }`;
const FEED = (inner: string) => `publishedStories(first: $first) { edges { node { author { ${inner} } } } }`;
const STORIES = (inner: string) => `stories(first: $first) { edges { node { ${inner} } } }`;

describe('depth', () => {
  it('passes at the limit and fails one level over, with DEPTH_LIMIT_EXCEEDED', () => {
    expect(errorsOf(deepQuery(12))).toEqual([]);
    expect(errorsOf(deepQuery(13))).toEqual([{ code: 'DEPTH_LIMIT_EXCEEDED', message: 'Query depth limit of 12 exceeded, found 13.' }]);
  });

  it('counts no level for a fragment, and none for introspection under __schema', () => {
    const query = deepQuery(12).replace('{ me {', '{ me { ...Deeper } } fragment Deeper on User {').replace(/}$/, '');
    expect(errorsOf(query)).toEqual([]);
    expect(errorsOf(getIntrospectionQuery())).toEqual([]);
  });
});

describe('aliases', () => {
  it('passes at the limit and fails one over, with ALIAS_LIMIT_EXCEEDED', () => {
    expect(errorsOf(aliasesQuery(30))).toEqual([]);
    expect(errorsOf(aliasesQuery(31))).toEqual([{ code: 'ALIAS_LIMIT_EXCEEDED', message: 'Aliases limit of 30 exceeded, found 31.' }]);
  });

  it('counts no alias of __typename', () => {
    expect(errorsOf(`{ me { ${repeat(31, (i) => `t${i}: __typename`)} } }`)).toEqual([]);
  });

  it('counts a fragment once per use', () => {
    const query = `{ me { ...A ... on User { ...A } } } fragment A on User { ${repeat(16, (i) => `a${i}: id`)} }`;
    expect(errorsOf(query)).toEqual([{ code: 'ALIAS_LIMIT_EXCEEDED', message: 'Aliases limit of 30 exceeded, found 32.' }]);
  });
});

describe('root fields', () => {
  it('passes at the limit and fails one over, with ROOT_FIELD_LIMIT_EXCEEDED', () => {
    expect(errorsOf(rootFieldsQuery(20))).toEqual([]);
    expect(errorsOf(rootFieldsQuery(21))).toEqual([{ code: 'ROOT_FIELD_LIMIT_EXCEEDED', message: 'Root field limit of 20 exceeded, found 21.' }]);
  });

  it('counts fields through fragments, and a response key repeated once', () => {
    const limits = { ...defaults, maxRootFields: 2 };
    expect(errorsOf('{ me { id } me { email } plans { tier } }', {}, limits)).toEqual([]);
    expect(errorsOf('{ ...R plans { tier } } fragment R on Query { stockVoices ... on Query { videoProviders } }', {}, limits)).toEqual([
      { code: 'ROOT_FIELD_LIMIT_EXCEEDED', message: 'Root field limit of 2 exceeded, found 3.' },
    ]);
  });
});

describe('tokens', () => {
  it('parses at the limit and refuses one token over, with TOKEN_LIMIT_EXCEEDED', () => {
    expect(() => parseWithinLimits(tokensQuery(1995), defaults)).not.toThrow();
    const error = catchError(() => parseWithinLimits(tokensQuery(1996), defaults));
    expect(error.extensions.code).toBe('TOKEN_LIMIT_EXCEEDED');
    expect(error.message).toMatch(/more tha[nt] 2000 tokens/);
  });

  it('passes other syntax errors through as they are', () => {
    const error = catchError(() => parseWithinLimits('{ me {', defaults, { noLocation: true }));
    expect(error.extensions.code).toBeUndefined();
    expect(error.message).toMatch(/^Syntax Error: Expected Name/);
  });
});

describe('cost', () => {
  it('counts the objects a connection returns, sized by a literal first', () => {
    // The connection, then 5 edges with a node each; scalars cost nothing.
    expect(costOf('{ publishedStories(first: 5) { totalCount edges { cursor node { id title } } } }')).toBe(11);
  });

  it('sizes a connection by a variable first, its default, or the default page when omitted', () => {
    const query = 'query Feed($first: Int) { publishedStories(first: $first) { edges { node { id } } } }';
    expect(costOf(query, { first: 7 })).toBe(15);
    expect(costOf(query, {})).toBe(41); // the subgraphs' default page of 20
    expect(costOf(query.replace('$first: Int', '$first: Int = 3'), {})).toBe(7);
    expect(costOf(query, { first: 'many' })).toBe(201); // refused at execution: counted as the largest page
  });

  it('multiplies nested connections', () => {
    const query = `query Feed($first: Int) { ${FEED(STORIES('id'))} }`;
    // 1 connection + 10 × (edge + node + author + 1 connection + 10 × (edge + node))
    expect(costOf(query, { first: 10 })).toBe(1 + 10 * (3 + 1 + 10 * 2));
    expect(costOf(query, { first: 100 })).toBe(1 + 100 * (3 + 1 + 100 * 2));
  });

  it('counts a fragment and an inline fragment once per use, a fragment on a connection with its page size', () => {
    expect(costOf('{ a: story(id: "1") { ...S } b: story(id: "2") { ...S } } fragment S on Story { author { id } }')).toBe(4);
    expect(costOf('{ publishedStories(first: 5) { ...Page } } fragment Page on StoryConnection { edges { node { id } } }')).toBe(11);
    expect(costOf('{ publishedStories(first: 5) { ... on StoryConnection { edges { node { id } } } } }')).toBe(11);
  });

  it('takes a list without paging arguments to hold 10, and introspection to cost nothing', () => {
    expect(costOf('{ plans { tier } }')).toBe(10);
    expect(costOf('{ __schema { types { name fields { name } } } __typename }')).toBe(0);
  });

  it('passes at the limit and fails one over, with COST_LIMIT_EXCEEDED', () => {
    const query = `query Feed($first: Int) { ${FEED(STORIES('id'))} }`;
    const cost = costOf(query, { first: 10 });
    expect(errorsOf(query, { first: 10 }, { ...defaults, maxCost: cost })).toEqual([]);
    expect(errorsOf(query, { first: 10 }, { ...defaults, maxCost: cost - 1 })).toEqual([
      { code: 'COST_LIMIT_EXCEEDED', message: `Cost limit of ${cost - 1} exceeded, found ${cost}.` },
    ]);
  });

  it('weighs only the operation operationName selects', () => {
    const document = parse(`query Cheap { me { id } } query Costly($first: Int) { ${FEED(STORIES('id'))} }`);
    const limits = { ...defaults, maxCost: 100 };
    expect(documentLimitErrors(schema, document, { first: 100 }, limits, 'Cheap')).toEqual([]);
    expect(documentLimitErrors(schema, document, { first: 100 }, limits, 'Costly').map((e) => e.extensions.code)).toEqual(['COST_LIMIT_EXCEEDED']);
  });

  it('admits two nested pages of 100 under the default limit, not three', () => {
    const two = `query Feed($first: Int) { ${FEED(STORIES('id'))} }`;
    const three = `query Feed($first: Int) { ${FEED(STORIES(`author { ${STORIES('id')} }`))} }`;
    expect(errorsOf(two, { first: 100 })).toEqual([]);
    expect(errorsOf(three, { first: 10 })).toEqual([]);
    expect(errorsOf(three, { first: 100 }).map((e) => e.code)).toEqual(['COST_LIMIT_EXCEEDED']);
  });
});

describe('client operations', () => {
  it('stay within half of every default limit, at the largest page they may ask for', () => {
    const halved = Object.fromEntries(Object.entries(defaults).map(([k, v]) => [k, Math.floor(v / 2)])) as unknown as OperationLimits;
    const operations = loadClientOperations();
    expect(operations.length).toBeGreaterThan(30);
    for (const op of operations) {
      const operation = op.document.definitions[0] as OperationDefinitionNode;
      const largest = Object.fromEntries((operation.variableDefinitions ?? []).filter((d) => d.variable.name.value === 'first').map((d) => [d.variable.name.value, 100]));
      expect(() => parseWithinLimits(op.source, halved), op.name).not.toThrow();
      expect(documentLimitErrors(schema, op.document, largest, halved, op.name), op.name).toEqual([]);
    }
  });
});

describe('variables size', () => {
  // {"s":"…"}: 8 bytes around the string.
  const body = (chars: string) => ({ query: '{ me { id } }', variables: { s: chars } });

  it('passes at the limit and refuses a byte over with 413 VARIABLES_TOO_LARGE, counting bytes', () => {
    expect(() => checkVariablesSize(body('x'.repeat(92)), 100)).not.toThrow();
    const refusal = catchError(() => checkVariablesSize(body('é'.repeat(47)), 100), HttpRefusal);
    expect(refusal).toMatchObject({ status: 413, code: 'VARIABLES_TOO_LARGE', message: 'Variables limit of 100 bytes exceeded, found 102.' });
  });

  it('adds up the operations of a batch, and counts GET-style string variables as sent', () => {
    expect(() => checkVariablesSize([body('x'.repeat(42)), body('x'.repeat(42))], 100)).not.toThrow();
    expect(() => checkVariablesSize([body('x'.repeat(42)), body('x'.repeat(43))], 100)).toThrow(HttpRefusal);
    expect(() => checkVariablesSize({ query: '{ me { id } }', variables: '{"s":"xx"}' }, 10)).not.toThrow();
    expect(() => checkVariablesSize({ query: '{ me { id } }', variables: '{"s":"xxx"}' }, 10)).toThrow(HttpRefusal);
  });

  it('lets through a body without variables', () => {
    for (const none of [undefined, 'query { me { id } }', { query: '{ me { id } }' }, { variables: null }, [null]]) {
      expect(() => checkVariablesSize(none, 0)).not.toThrow();
    }
  });
});

type Gateway = ApolloServerOptionsWithGateway<BaseContext>['gateway'];
type Executor = NonNullable<Awaited<ReturnType<Gateway['load']>>['executor']>;
type ExecutorContext = Parameters<Executor>[0];

// @apollo/gateway builds its schema with the graphql Apollo Server loads, its CommonJS build;
// vite gives the project's code the ESM one. So does the stub: the limits meet a schema of
// another graphql instance, as they do behind the real gateway in the integration tests.
const gatewaySchema = (createRequire(import.meta.url)('graphql') as typeof import('graphql')).buildSchema(printSchema(schema));

/** A gateway serving the real API schema, executing with `executor`. */
function stubGateway(executor: Executor): Gateway & { stopped: boolean } {
  let listener: Parameters<Gateway['onSchemaLoadOrUpdate']>[0] | undefined;
  return {
    stopped: false,
    onSchemaLoadOrUpdate(callback) {
      listener = callback;
      return () => (listener = undefined);
    },
    async load() {
      listener?.({ apiSchema: gatewaySchema, coreSupergraphSdl: '' });
      return { executor };
    },
    async stop() {
      this.stopped = true;
    },
  };
}
const after = <T>(ms: number, value: T) => new Promise<T>((resolve) => setTimeout(() => resolve(value), ms));
const operationNamed = (operationName: string | null) => ({ operationName }) as ExecutorContext;

describe('operation timeouts', () => {
  const timeouts = { defaultMs: 100, byOperation: { Report: 500 } };
  const loaded = async (executor: Executor) => (await withOperationTimeouts(stubGateway(executor), timeouts).load({ apollo: {} })).executor!;

  beforeAll(() => vi.useFakeTimers());
  afterAll(() => vi.useRealTimers());

  it('answers data null and OPERATION_TIMEOUT once the deadline passes', async () => {
    const execute = await loaded(() => after(200, { data: { me: null } }));
    const result = execute(operationNamed('Slow'));
    await vi.advanceTimersByTimeAsync(100);
    expect(await result).toEqual({ data: null, errors: [expect.objectContaining({ message: 'Operation time limit of 100 ms exceeded.', extensions: { code: 'OPERATION_TIMEOUT' } })] });
    await vi.runAllTimersAsync();
  });

  it('passes a result within the deadline through and leaves no timer running', async () => {
    const execute = await loaded(() => after(90, { data: { me: null } }));
    const result = execute(operationNamed('Quick'));
    await vi.advanceTimersByTimeAsync(90);
    expect(await result).toEqual({ data: { me: null } });
    expect(vi.getTimerCount()).toBe(0);
  });

  it('gives a named operation its own deadline, and only by an own key', async () => {
    const execute = await loaded(() => after(200, { data: { me: null } }));
    const report = execute(operationNamed('Report'));
    const named = execute(operationNamed('toString'));
    await vi.advanceTimersByTimeAsync(200);
    expect(await report).toEqual({ data: { me: null } });
    expect((await named).errors?.[0]?.extensions.code).toBe('OPERATION_TIMEOUT');
  });

  it('passes a failure within the deadline through', async () => {
    const execute = await loaded(async () => {
      throw new Error('the planner broke');
    });
    await expect(execute(operationNamed('Broken'))).rejects.toThrow('the planner broke');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('stops the gateway it wraps', async () => {
    const gateway = stubGateway(async () => ({ data: null }));
    await withOperationTimeouts(gateway, timeouts).stop();
    expect(gateway.stopped).toBe(true);
  });
});

describe('with Apollo Server', () => {
  let apollo: ApolloServer;
  const executor: Executor = (context) => (context.operationName === 'Slow' ? new Promise(() => {}) : Promise.resolve({ data: { ok: true } }));

  beforeAll(async () => {
    apollo = new ApolloServer({ gateway: withOperationTimeouts(stubGateway(executor), { defaultMs: 50, byOperation: {} }), ...apolloLimits(defaults) });
    await apollo.start();
  });
  afterAll(() => apollo.stop());

  const run = async (query: string, variables?: Record<string, unknown>) => {
    const response = await apollo.executeOperation({ query, variables });
    if (response.body.kind !== 'single') throw new Error('expected a single result');
    const { data, errors } = response.body.singleResult;
    return { status: response.http.status, data, codes: errors?.map((e) => e.extensions?.code) };
  };

  it('answers each limit with its own code and status 400', async () => {
    expect(await run(deepQuery(13))).toEqual({ status: 400, data: undefined, codes: ['DEPTH_LIMIT_EXCEEDED'] });
    expect(await run(aliasesQuery(31))).toEqual({ status: 400, data: undefined, codes: ['ALIAS_LIMIT_EXCEEDED'] });
    expect(await run(rootFieldsQuery(21))).toEqual({ status: 400, data: undefined, codes: ['ROOT_FIELD_LIMIT_EXCEEDED'] });
    expect(await run(tokensQuery(1996))).toEqual({ status: 400, data: undefined, codes: ['TOKEN_LIMIT_EXCEEDED'] });
    const three = `query Feed($first: Int) { ${FEED(STORIES(`author { ${STORIES('id')} }`))} }`;
    expect(await run(three, { first: 100 })).toEqual({ status: 400, data: undefined, codes: ['COST_LIMIT_EXCEEDED'] });
  });

  it('keeps other validation errors as Apollo codes them, beside a limit', async () => {
    const query = deepQuery(13).replace('{ me {', '{ nope me {');
    expect((await run(query)).codes?.sort()).toEqual(['DEPTH_LIMIT_EXCEEDED', 'GRAPHQL_VALIDATION_FAILED']);
  });

  it('executes an operation within the limits, the same with a variable that keeps the cost low', async () => {
    expect(await run(deepQuery(12))).toEqual({ status: undefined, data: { ok: true }, codes: undefined });
    const three = `query Feed($first: Int) { ${FEED(STORIES(`author { ${STORIES('id')} }`))} }`;
    expect(await run(three, { first: 10 })).toEqual({ status: undefined, data: { ok: true }, codes: undefined });
  });

  it('times an operation out', async () => {
    expect(await run('query Slow { me { id } }')).toEqual({ status: undefined, data: null, codes: ['OPERATION_TIMEOUT'] });
  });

  it('answers HTTP 400 with the code in the body', async () => {
    const http = async (query: string, variables?: Record<string, unknown>) => {
      const response = await apollo.executeHTTPGraphQLRequest({
        httpGraphQLRequest: { method: 'POST', headers: new HeaderMap([['content-type', 'application/json']]), search: '', body: variables ? { query, variables } : { query } },
        context: async () => ({}),
      });
      if (response.body.kind !== 'complete') throw new Error('expected a complete body');
      return { status: response.status, codes: (JSON.parse(response.body.string) as { errors: GraphQLFormattedError[] }).errors.map((e) => e.extensions?.code) };
    };
    expect(await http(deepQuery(13))).toEqual({ status: 400, codes: ['DEPTH_LIMIT_EXCEEDED'] });
    expect(await http(tokensQuery(1996))).toEqual({ status: 400, codes: ['TOKEN_LIMIT_EXCEEDED'] });
    const three = `query Feed($first: Int) { ${FEED(STORIES(`author { ${STORIES('id')} }`))} }`;
    expect(await http(three, { first: 100 })).toEqual({ status: 400, codes: ['COST_LIMIT_EXCEEDED'] });
  });
});

function catchError<E = GraphQLError>(fn: () => unknown, type?: abstract new (...args: never[]) => E): E {
  try {
    fn();
  } catch (error) {
    if (type) expect(error).toBeInstanceOf(type);
    return error as E;
  }
  throw new Error('expected an error');
}
