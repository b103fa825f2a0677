import type { Server } from 'node:http';
import { composeServices } from '@apollo/composition';
import { ApolloGateway } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginInlineTraceDisabled } from '@apollo/server/plugin/disabled';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { GraphQLError, parse, type DocumentNode } from 'graphql';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { graphqlHandler, sendJson } from '../platform/http/graphql-http.js';
import { closeServer, createHttpServer, listen } from '../platform/http/server.js';
import { ANONYMOUS } from '../platform/internal-auth.js';
import { createLogger } from '../platform/log.js';
import type { CircuitState } from './circuit-breaker.js';
import { maskInternalErrors } from './errors.js';
import type { GatewayContext } from './gateway.js';
import { guardedFetcher, SubgraphDataSource, type FetchReport } from './subgraph-source.js';

const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
const FEDERATION = 'extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])';

/** How the stand-in posts subgraph behaves: as it should, slowly, with a 503, or with GraphQL errors. */
type Mode = 'ok' | 'slow' | 'broken' | 'graphql-error';

/** A tiny real subgraph on loopback that can be stopped and started again on the same port. */
class TestSubgraph {
  requests = 0;
  mode: Mode = 'ok';
  slowMs = 0;
  private port = 0;
  private http: Server | null = null;
  private apollo: ApolloServer | null = null;
  url = '';

  constructor(
    readonly name: string,
    readonly typeDefs: DocumentNode,
    readonly resolvers: (subgraph: TestSubgraph) => Record<string, Record<string, unknown>>,
  ) {}

  async start(): Promise<void> {
    const apollo = new ApolloServer({
      schema: buildSubgraphSchema({ typeDefs: this.typeDefs, resolvers: this.resolvers(this) as never }),
      plugins: [ApolloServerPluginInlineTraceDisabled()],
    });
    await apollo.start();
    const graphql = graphqlHandler(apollo, { maxBodyBytes: 1 << 20, logger, context: async () => ({}) });
    this.http = createHttpServer({
      '/graphql': (req, res) => {
        this.requests += 1;
        if (this.mode === 'broken') return sendJson(res, 503, { error: 'upstream connect error' });
        return graphql(req, res);
      },
    }, logger);
    this.url = await listen(this.http, this.port, '127.0.0.1');
    this.port = Number(new URL(this.url).port);
    this.apollo = apollo;
  }

  async stop(): Promise<void> {
    if (this.http) {
      const closing = closeServer(this.http);
      this.http.closeAllConnections();
      await closing;
    }
    await this.apollo?.stop();
    this.http = null;
    this.apollo = null;
  }

  get running(): boolean {
    return this.http !== null;
  }
}

const users = new TestSubgraph(
  'users',
  parse(`${FEDERATION}
    type Query { me: User }
    type User @key(fields: "id") { id: ID! name: String! }`),
  () => ({
    Query: { me: () => ({ id: 'u1', name: 'Ada' }) },
    User: { __resolveReference: (ref: { id: string }) => ({ id: ref.id, name: 'Ada' }) },
  }),
);

const posts = new TestSubgraph(
  'posts',
  parse(`${FEDERATION}
    type User @key(fields: "id") { id: ID! posts: [Post!] }
    type Post { title: String! }`),
  (subgraph) => ({
    User: {
      posts: async () => {
        if (subgraph.mode === 'slow') await new Promise((resolve) => setTimeout(resolve, subgraph.slowMs));
        if (subgraph.mode === 'graphql-error') throw new GraphQLError('Not yours to read', { extensions: { code: 'FORBIDDEN' } });
        return [{ title: 'The Fox on the Hill' }];
      },
    },
  }),
);

let supergraphSdl: string;

beforeAll(async () => {
  await users.start();
  await posts.start();
  const composed = composeServices([users, posts].map((s) => ({ name: s.name, url: `${s.url}/graphql`, typeDefs: s.typeDefs })));
  if (!composed.supergraphSdl) throw new Error(composed.errors?.map((e) => e.message).join('\n'));
  supergraphSdl = composed.supergraphSdl;
});

afterAll(async () => {
  await users.stop();
  await posts.stop();
});

/** A gateway over the two subgraphs whose data sources have these settings, on a clock the test moves. */
async function startGateway(settings: { timeoutMs?: number; failureThreshold?: number; resetMs?: number } = {}) {
  const clock = { now: 0 };
  const states: Array<[string, CircuitState]> = [];
  const fetches: FetchReport[] = [];
  const gateway = new ApolloGateway({
    supergraphSdl,
    buildService: ({ name, url }) =>
      new SubgraphDataSource({
        name,
        url: url!,
        // Only posts gets the test's timeout: the other's first call also loads Node's fetch.
        timeoutMs: name === 'posts' ? (settings.timeoutMs ?? 2_000) : 2_000,
        failureThreshold: settings.failureThreshold ?? 3,
        resetMs: settings.resetMs ?? 10_000,
        logger,
        now: () => clock.now,
        onStateChange: (subgraph, state) => states.push([subgraph, state]),
        onFetch: (report) => fetches.push(report),
        willSendRequest({ request, context }) {
          request.http?.headers.set('x-correlation-id', context.correlationId);
        },
      }),
  });
  const apollo = new ApolloServer<GatewayContext>({ gateway, formatError: maskInternalErrors(logger), includeStacktraceInErrorResponses: false });
  await apollo.start();
  const query = async (source: string) => {
    const response = await apollo.executeOperation({ query: source }, { contextValue: { caller: ANONYMOUS, correlationId: 'test-correlation' } });
    if (response.body.kind !== 'single') throw new Error('incremental response');
    return response.body.singleResult;
  };
  return { apollo, clock, states, fetches, query };
}

let gateways: Array<{ apollo: ApolloServer<GatewayContext> }> = [];
async function gatewayFor(settings?: Parameters<typeof startGateway>[0]) {
  const started = await startGateway(settings);
  gateways.push(started);
  return started;
}

const WITH_POSTS = '{ me { name posts { title } } }';
const ONLY_USERS = '{ me { name } }';
const FULL = { me: { name: 'Ada', posts: [{ title: 'The Fox on the Hill' }] } };

beforeEach(async () => {
  posts.mode = 'ok';
  if (!posts.running) await posts.start();
  posts.requests = 0;
});

afterEach(async () => {
  for (const { apollo } of gateways) await apollo.stop();
  gateways = [];
});

describe('SubgraphDataSource behind a real ApolloGateway', () => {
  it('answers in full while every subgraph is up', async () => {
    const { query, fetches } = await gatewayFor();
    expect(await query(WITH_POSTS)).toEqual({ data: FULL });
    expect(fetches.map((f) => [f.subgraph, f.outcome, f.status])).toEqual([['users', 'ok', 200], ['posts', 'ok', 200]]);
  });

  it('answers from the subgraphs that are up when one is down, naming the one that is not', async () => {
    const { query, fetches } = await gatewayFor();
    await posts.stop();

    expect(await query(ONLY_USERS)).toEqual({ data: { me: { name: 'Ada' } } });
    const partial = await query(WITH_POSTS);
    expect(partial).toEqual({
      data: { me: { name: 'Ada', posts: null } },
      errors: [{ message: 'The posts service is unavailable', extensions: { code: 'SUBGRAPH_UNAVAILABLE', subgraph: 'posts' } }],
    });
    // The client learns which service, never where it runs.
    expect(JSON.stringify(partial)).not.toContain(new URL(posts.url).port);
    expect(fetches.at(-1)).toMatchObject({ subgraph: 'posts', outcome: 'error' });
  });

  it('gives up on a subgraph slower than its timeout, keeping the rest of the answer', async () => {
    const { query, fetches } = await gatewayFor({ timeoutMs: 150 });
    posts.mode = 'slow';
    posts.slowMs = 800;

    const started = performance.now();
    expect(await query(WITH_POSTS)).toEqual({
      data: { me: { name: 'Ada', posts: null } },
      errors: [{ message: 'The posts service did not answer within 150 ms', extensions: { code: 'SUBGRAPH_TIMEOUT', subgraph: 'posts' } }],
    });
    expect(performance.now() - started).toBeLessThan(700);
    expect(fetches.at(-1)).toMatchObject({ subgraph: 'posts', outcome: 'timeout' });
  });

  it('opens the circuit after repeated failures, sends nothing while open, and closes after a successful trial', async () => {
    const { query, clock, states, fetches } = await gatewayFor({ failureThreshold: 2, resetMs: 5_000 });
    posts.mode = 'broken';

    for (let i = 0; i < 2; i++) expect((await query(WITH_POSTS)).errors).toEqual([expect.objectContaining({ extensions: { code: 'SUBGRAPH_UNAVAILABLE', subgraph: 'posts' } })]);
    expect(posts.requests).toBe(2);
    expect(states).toEqual([['posts', 'OPEN']]);

    // Open: the gateway fails fast; the subgraph sees none of it.
    for (let i = 0; i < 3; i++) {
      expect(await query(WITH_POSTS)).toEqual({
        data: { me: { name: 'Ada', posts: null } },
        errors: [{ message: 'The posts service is unavailable', extensions: { code: 'SUBGRAPH_UNAVAILABLE', subgraph: 'posts' } }],
      });
    }
    expect(posts.requests).toBe(2);
    expect(fetches.filter((f) => f.outcome === 'rejected')).toHaveLength(3);

    // Half-open while still broken: the one trial fails and the circuit opens again.
    clock.now += 5_000;
    await query(WITH_POSTS);
    await query(WITH_POSTS);
    expect(posts.requests).toBe(3);
    expect(states.map(([, state]) => state)).toEqual(['OPEN', 'HALF_OPEN', 'OPEN']);

    // Half-open once it is healthy: the trial succeeds and everything answers again.
    posts.mode = 'ok';
    clock.now += 5_000;
    expect(await query(WITH_POSTS)).toEqual({ data: FULL });
    expect(await query(WITH_POSTS)).toEqual({ data: FULL });
    expect(posts.requests).toBe(5);
    expect(states.map(([, state]) => state)).toEqual(['OPEN', 'HALF_OPEN', 'OPEN', 'HALF_OPEN', 'CLOSED']);
  });

  it('lets exactly one trial through while half-open; concurrent queries fail fast', async () => {
    const { query, clock } = await gatewayFor({ failureThreshold: 1, resetMs: 1_000 });
    posts.mode = 'broken';
    await query(WITH_POSTS);
    posts.mode = 'slow';
    posts.slowMs = 100;
    posts.requests = 0;
    clock.now += 1_000;

    const results = await Promise.all([query(WITH_POSTS), query(WITH_POSTS), query(WITH_POSTS)]);
    expect(posts.requests).toBe(1);
    expect(results.filter((r) => !r.errors)).toEqual([{ data: FULL }]);
    expect(results.filter((r) => r.errors?.[0]?.extensions?.code === 'SUBGRAPH_UNAVAILABLE')).toHaveLength(2);
  });

  it('answers again once a stopped subgraph is restarted and the circuit has let a trial through', async () => {
    const { query, clock } = await gatewayFor({ failureThreshold: 2, resetMs: 1_000 });
    await posts.stop();
    for (let i = 0; i < 3; i++) expect((await query(WITH_POSTS)).data).toEqual({ me: { name: 'Ada', posts: null } });
    expect(await query(ONLY_USERS)).toEqual({ data: { me: { name: 'Ada' } } });

    await posts.start();
    expect(posts.requests).toBe(0);
    clock.now += 1_000;
    expect(await query(WITH_POSTS)).toEqual({ data: FULL });
    expect(posts.requests).toBe(1);
  });

  it('does not count GraphQL errors in a 200 answer as failures of the subgraph', async () => {
    const { query, states } = await gatewayFor({ failureThreshold: 2 });
    posts.mode = 'graphql-error';
    for (let i = 0; i < 4; i++) {
      const result = await query(WITH_POSTS);
      expect(result.data).toEqual({ me: { name: 'Ada', posts: null } });
      expect(result.errors).toEqual([expect.objectContaining({ message: 'Not yours to read', extensions: { code: 'FORBIDDEN' } })]);
    }
    expect(posts.requests).toBe(4);
    expect(states).toEqual([]);
  });
});

describe('guardedFetcher on the wire', () => {
  let server: Server;
  let url: string;
  let behaviour: 'stall-body' | 'bad-request' = 'stall-body';

  beforeAll(async () => {
    server = createHttpServer({
      '/graphql': (_req, res) => {
        if (behaviour === 'bad-request') return sendJson(res, 400, { errors: [{ message: 'Syntax Error' }] });
        // Headers at once, then a body that never ends: slow is slow, whenever it stalls.
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"data":');
      },
    }, logger);
    url = `${await listen(server, 0, '127.0.0.1')}/graphql`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await closeServer(server);
  });

  it('times out a subgraph that sends its headers and then stalls', async () => {
    behaviour = 'stall-body';
    const fetches: FetchReport[] = [];
    const { fetcher } = guardedFetcher({ name: 'story', timeoutMs: 100, logger, onFetch: (r) => fetches.push(r) });
    await expect(fetcher(url, { method: 'POST', body: '{}' })).rejects.toMatchObject({
      message: 'The story service did not answer within 100 ms',
      extensions: { code: 'SUBGRAPH_TIMEOUT', subgraph: 'story' },
    });
    expect(fetches).toEqual([{ subgraph: 'story', outcome: 'timeout', durationMs: expect.any(Number) }]);
  });

  it('passes a 4xx answer on to the data source and counts it as the subgraph being up', async () => {
    behaviour = 'bad-request';
    const fetches: FetchReport[] = [];
    const { fetcher, breaker } = guardedFetcher({ name: 'story', timeoutMs: 1_000, failureThreshold: 1, logger, onFetch: (r) => fetches.push(r) });
    const response = await fetcher(url, { method: 'POST', body: '{}' });
    expect([response.status, await response.json()]).toEqual([400, { errors: [{ message: 'Syntax Error' }] }]);
    expect(breaker.state).toBe('CLOSED');
    expect(fetches).toEqual([{ subgraph: 'story', outcome: 'ok', status: 400, durationMs: expect.any(Number) }]);
  });
});
