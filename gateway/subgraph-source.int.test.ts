import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { composeServices } from '@apollo/composition';
import { ApolloGateway, type GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginInlineTraceDisabled } from '@apollo/server/plugin/disabled';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { GraphQLError, parse, type DocumentNode } from 'graphql';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { graphqlHandler, sendJson } from '../platform/http/graphql-http.js';
import { closeServer, createHttpServer, listen } from '../platform/http/server.js';
import { ANONYMOUS, signCaller, verifyCaller, type Caller } from '../platform/internal-auth.js';
import { createLogger } from '../platform/log.js';
import type { CircuitState } from './circuit-breaker.js';
import { maskInternalErrors } from './errors.js';
import type { GatewayContext } from './gateway.js';
import { SubgraphDataSource, WriteEpochs, type FetchReport, type SubgraphSourceOptions } from './subgraph-source.js';

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
async function startGateway(settings: { timeoutMs?: number; failureThreshold?: number; resetMs?: number; dedupe?: boolean } = {}) {
  const clock = { now: 0 };
  const states: Array<[string, CircuitState]> = [];
  const fetches: FetchReport[] = [];
  const shared: string[] = [];
  const gateway = new ApolloGateway({
    supergraphSdl,
    buildService: ({ name, url }) => {
      const source = new SubgraphDataSource({
        name,
        url: url!,
        // Only posts gets the test's timeout.
        timeoutMs: name === 'posts' ? (settings.timeoutMs ?? 2_000) : 2_000,
        failureThreshold: settings.failureThreshold ?? 3,
        resetMs: settings.resetMs ?? 10_000,
        dedupe: settings.dedupe ?? true,
        logger,
        now: () => clock.now,
        onStateChange: (subgraph, state) => states.push([subgraph, state]),
        onFetch: (report) => fetches.push(report),
        onShared: (subgraph) => shared.push(subgraph),
        willSendRequest({ request, context }) {
          request.http?.headers.set('x-correlation-id', context.correlationId);
        },
      });
      sources.push(source);
      return source;
    },
  });
  const apollo = new ApolloServer<GatewayContext>({ gateway, formatError: maskInternalErrors(logger), includeStacktraceInErrorResponses: false });
  await apollo.start();
  const query = async (source: string) => {
    const response = await apollo.executeOperation({ query: source }, { contextValue: { caller: ANONYMOUS, correlationId: 'test-correlation' } });
    if (response.body.kind !== 'single') throw new Error('incremental response');
    return response.body.singleResult;
  };
  return { apollo, clock, states, fetches, shared, query };
}

let gateways: Array<{ apollo: ApolloServer<GatewayContext> }> = [];
let sources: SubgraphDataSource[] = [];
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
  for (const source of sources) source.close();
  gateways = [];
  sources = [];
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
    const { query, clock } = await gatewayFor({ failureThreshold: 1, resetMs: 1_000, dedupe: false });
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

  it('lets identical concurrent queries share the one trial while half-open', async () => {
    const { query, clock, shared } = await gatewayFor({ failureThreshold: 1, resetMs: 1_000 });
    posts.mode = 'broken';
    await query(WITH_POSTS);
    posts.mode = 'slow';
    posts.slowMs = 100;
    posts.requests = 0;
    clock.now += 1_000;

    const results = await Promise.all([query(WITH_POSTS), query(WITH_POSTS), query(WITH_POSTS)]);
    expect(posts.requests).toBe(1);
    expect(results).toEqual([{ data: FULL }, { data: FULL }, { data: FULL }]);
    expect(shared.filter((subgraph) => subgraph === 'posts')).toHaveLength(2);
  });

  it('sends identical concurrent queries to each subgraph once, each client getting its whole answer', async () => {
    const { query, fetches, shared } = await gatewayFor();
    await query(ONLY_USERS);
    users.requests = 0;
    posts.mode = 'slow';
    posts.slowMs = 50;
    fetches.length = 0;

    const results = await Promise.all(Array.from({ length: 8 }, () => query(WITH_POSTS)));
    // Each client's response is whole, though built from answers it shared (each its own copy:
    // the gateway merges the next fetch's entities into what the last one answered).
    expect(results).toEqual(Array.from({ length: 8 }, () => ({ data: FULL })));
    expect([users.requests, posts.requests]).toEqual([1, 1]);
    expect(fetches.map((f) => [f.subgraph, f.outcome])).toEqual([['users', 'ok'], ['posts', 'ok']]);
    expect(shared.sort()).toEqual([...Array(7).fill('posts'), ...Array(7).fill('users')]);
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


describe('SubgraphDataSource on the wire', () => {
  const SECRET = 'a-test-secret-of-the-gateway-and-subgraphs';
  type Behaviour = 'answer' | 'stall-body' | 'bad-request' | 'unauthorized' | 'broken' | 'not-json';
  let server: Server;
  let url: string;
  let behaviour: Behaviour = 'answer';
  let delayMs = 0;
  let cacheControl: string | undefined;
  /** Drop the next request that arrives on a socket which already served one, unanswered. */
  let dropNextOnReusedSocket = false;
  /** What the subgraph received, its signature checked as a subgraph checks it. */
  let received: Array<{ caller: Caller; correlationId: string; body: Record<string, unknown>; headers: IncomingMessage['headers'] }> = [];
  let connections = 0;
  const open = new Set<Socket>();
  const served = new WeakSet<Socket>();

  async function respond(req: IncomingMessage, res: ServerResponse, raw: string): Promise<void> {
    if (dropNextOnReusedSocket && served.has(req.socket)) {
      dropNextOnReusedSocket = false;
      req.socket.destroy();
      return;
    }
    served.add(req.socket);
    const body = JSON.parse(raw) as Record<string, unknown>;
    const verified = verifyCaller(SECRET, { audience: 'story', headers: req.headers, operation: body as { query: string; variables: unknown } });
    received.push({ ...verified, body, headers: req.headers });
    if (delayMs) await new Promise((resolve) => setTimeout(resolve, delayMs));
    if (behaviour === 'bad-request') return sendJson(res, 400, { errors: [{ message: 'Syntax Error' }] });
    if (behaviour === 'unauthorized') return sendJson(res, 401, { errors: [{ message: 'Who are you?' }] });
    if (behaviour === 'broken') return sendJson(res, 503, { error: 'upstream connect error' });
    if (behaviour === 'not-json') {
      res.writeHead(200, { 'content-type': 'text/html' });
      return void res.end('<h1>Welcome to nginx!</h1>');
    }
    if (behaviour === 'stall-body') {
      // Headers at once, then a body that never ends: slow is slow, whenever it stalls.
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.write('{"data":');
    }
    res.writeHead(200, { 'content-type': 'application/json', ...(cacheControl ? { 'cache-control': cacheControl } : {}) });
    res.end(JSON.stringify({ data: { echo: { variables: body.variables ?? null, userId: verified.caller.userId, nth: received.length } } }));
  }

  function listenOn(target: Server): Promise<string> {
    target.on('connection', (socket: Socket) => {
      connections += 1;
      open.add(socket);
      socket.on('close', () => open.delete(socket));
    });
    return listen(target, 0, '127.0.0.1');
  }

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => void respond(req, res, Buffer.concat(chunks).toString()).catch((error: unknown) => sendJson(res, 500, { error: String(error) })));
  };

  beforeAll(async () => {
    server = createServer(handler);
    url = `${await listenOn(server)}/graphql`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await closeServer(server);
  });
  beforeEach(() => {
    behaviour = 'answer';
    delayMs = 0;
    cacheControl = undefined;
    dropNextOnReusedSocket = false;
    received = [];
  });

  const ADA: Caller = { userId: 'u-ada', roles: ['USER'] };
  const BOB: Caller = { userId: 'u-bob', roles: ['USER'] };

  /** A data source to the test server, signing as the gateway does; its reports. */
  function sourceFor(settings: Partial<SubgraphSourceOptions> = {}) {
    const fetches: FetchReport[] = [];
    const shared: string[] = [];
    const source = new SubgraphDataSource({
      name: 'story',
      url,
      timeoutMs: 2_000,
      logger,
      onFetch: (report) => fetches.push(report),
      onShared: (subgraph) => shared.push(subgraph),
      willSendRequest({ request, context }) {
        const signed = signCaller(SECRET, {
          audience: 'story',
          caller: context.caller,
          correlationId: context.correlationId,
          operation: { query: request.query, variables: request.variables },
        });
        for (const [key, value] of Object.entries(signed)) request.http?.headers.set(key, value);
        // Differs on every call, as a real trace's would.
        request.http?.headers.set('traceparent', `00-${randomUUID().replaceAll('-', '')}-${randomUUID().slice(0, 16).replace('-', '0')}-01`);
      },
      ...settings,
    });
    sources.push(source);
    return { source, fetches, shared };
  }

  const STORY = 'query Story__story__0($id:ID!){story(id:$id){title}}';
  type Policy = { restrict: (hint: { maxAge: number; scope?: string }) => void };

  /** One fetch of an incoming operation, as @apollo/gateway's executeQueryPlan hands it over. */
  function fetchOf(query: string, variables: Record<string, unknown> = { id: 's1' }, caller: Caller = ADA, policy?: Policy, incoming = /^\s*mutation\b/.test(query) ? 'mutation' : 'query') {
    return {
      kind: 'incoming operation',
      request: { query, variables, operationName: /^(?:query|mutation) (\w+)/.exec(query)?.[1] },
      // What the gateway runs: the client's operation, whose type decides sharing (its plan's fetches are all queries).
      incomingRequestContext: { overallCachePolicy: policy, operation: { operation: incoming } },
      context: { caller, correlationId: randomUUID() },
    } as unknown as GraphQLDataSourceProcessOptions<GatewayContext>;
  }

  it('sends the body the signature binds, with the hook’s headers, and answers the parsed body', async () => {
    const { source, fetches } = sourceFor();
    expect(await source.process(fetchOf(STORY, { id: 's1' }, ADA))).toEqual({ data: { echo: { variables: { id: 's1' }, userId: 'u-ada', nth: 1 } } });
    expect(received).toEqual([
      expect.objectContaining({ caller: ADA, body: { query: STORY, variables: { id: 's1' }, operationName: 'Story__story__0' } }),
    ]);
    expect(received[0]!.headers['content-type']).toBe('application/json');
    expect(fetches).toEqual([{ subgraph: 'story', outcome: 'ok', status: 200, durationMs: expect.any(Number) }]);
  });

  it('times out a subgraph that sends its headers and then stalls, and drops the connection', async () => {
    behaviour = 'stall-body';
    const { source, fetches } = sourceFor({ timeoutMs: 100 });
    await expect(source.process(fetchOf(STORY))).rejects.toMatchObject({
      message: 'The story service did not answer within 100 ms',
      extensions: { code: 'SUBGRAPH_TIMEOUT', subgraph: 'story' },
    });
    expect(fetches).toEqual([{ subgraph: 'story', outcome: 'timeout', durationMs: expect.any(Number) }]);
    await vi.waitFor(() => expect(open.size).toBe(0));
  });

  it('answers a 4xx with the error RemoteGraphQLDataSource gave, and counts it as the subgraph being up', async () => {
    behaviour = 'bad-request';
    const { source, fetches } = sourceFor({ failureThreshold: 1 });
    await expect(source.process(fetchOf(STORY))).rejects.toMatchObject({
      message: '400: Bad Request',
      extensions: { response: { url, status: 400, statusText: 'Bad Request', body: { errors: [{ message: 'Syntax Error' }] } } },
    });
    expect(source.breaker.state).toBe('CLOSED');
    expect(fetches).toEqual([{ subgraph: 'story', outcome: 'ok', status: 400, durationMs: expect.any(Number) }]);

    behaviour = 'unauthorized';
    await expect(source.process(fetchOf(STORY))).rejects.toMatchObject({ message: '401: Unauthorized', extensions: { code: 'UNAUTHENTICATED' } });
  });

  it('answers a 5xx as SUBGRAPH_UNAVAILABLE and counts it against the subgraph', async () => {
    behaviour = 'broken';
    const { source, fetches } = sourceFor({ failureThreshold: 2 });
    for (let i = 0; i < 3; i++) {
      await expect(source.process(fetchOf(STORY))).rejects.toMatchObject({
        message: 'The story service is unavailable',
        extensions: { code: 'SUBGRAPH_UNAVAILABLE', subgraph: 'story' },
      });
    }
    expect(received).toHaveLength(2);
    expect(source.breaker.state).toBe('OPEN');
    expect(fetches.map((f) => [f.outcome, f.status])).toEqual([['error', 503], ['error', 503], ['rejected', undefined]]);
  });

  it('refuses an answer that is not JSON, uncoded (the client sees an internal error)', async () => {
    behaviour = 'not-json';
    const { source } = sourceFor();
    const error = await source.process(fetchOf(STORY)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toHaveProperty('extensions.code');
  });

  it('restricts the response’s cache policy by the subgraph’s Cache-Control, as RemoteGraphQLDataSource did', async () => {
    const { source } = sourceFor();
    const hints: unknown[] = [];
    const policy: Policy = { restrict: (hint) => hints.push(hint) };
    for (const header of ['max-age=30, public', 'private, max-age=5', undefined]) {
      cacheControl = header;
      await source.process(fetchOf(STORY, { id: 's1' }, ADA, policy));
    }
    expect(hints).toEqual([{ maxAge: 30, scope: 'PUBLIC' }, { maxAge: 5, scope: 'PRIVATE' }, { maxAge: 0 }]);
  });

  describe('in-flight deduplication', () => {
    it('shares one call among identical concurrent queries by the same caller, each getting its own copy', async () => {
      delayMs = 50;
      const { source, fetches, shared } = sourceFor();
      const results = await Promise.all(Array.from({ length: 5 }, () => source.process(fetchOf(STORY))));
      expect(received).toHaveLength(1);
      expect(results).toEqual(Array.from({ length: 5 }, () => ({ data: { echo: { variables: { id: 's1' }, userId: 'u-ada', nth: 1 } } })));
      expect(new Set(results).size).toBe(5);
      (results[0]!.data!.echo as { nth: number }).nth = 99;
      expect(results[1]!.data!.echo).toMatchObject({ nth: 1 });
      expect(fetches).toHaveLength(1);
      expect(shared).toEqual(['story', 'story', 'story', 'story']);

      // Once answered, the next one is a call of its own.
      await source.process(fetchOf(STORY));
      expect(received).toHaveLength(2);
    });

    it('restricts each sharer’s own cache policy', async () => {
      delayMs = 20;
      cacheControl = 'max-age=60, public';
      const { source } = sourceFor();
      const policies = Array.from({ length: 3 }, () => ({ restrict: vi.fn() }));
      await Promise.all(policies.map((policy) => source.process(fetchOf(STORY, { id: 's1' }, ADA, policy))));
      expect(received).toHaveLength(1);
      for (const policy of policies) expect(policy.restrict).toHaveBeenCalledWith({ maxAge: 60, scope: 'PUBLIC' });
    });

    it('does not share across callers, variables or queries', async () => {
      delayMs = 50;
      const { source, shared } = sourceFor();
      const results = await Promise.all([
        source.process(fetchOf(STORY, { id: 's1' }, ADA)),
        source.process(fetchOf(STORY, { id: 's1' }, BOB)),
        source.process(fetchOf(STORY, { id: 's1' }, ANONYMOUS)),
        source.process(fetchOf(STORY, { id: 's2' }, ADA)),
        source.process(fetchOf('query Story__story__1($id:ID!){story(id:$id){body}}', { id: 's1' }, ADA)),
      ]);
      expect(received).toHaveLength(5);
      expect(results.map((r) => (r.data!.echo as { userId: string | null }).userId)).toEqual(['u-ada', 'u-bob', null, 'u-ada', 'u-ada']);
      expect(shared).toEqual([]);
    });

    it("never shares a mutation's calls, whatever their text (the client's operation decides)", async () => {
      delayMs = 20;
      const { source, shared } = sourceFor();
      const calls = ['mutation Publish__story__0($id:ID!){publish(id:$id){ok}}', '# first a comment\nmutation{publish(id:"s1"){ok}}', STORY];
      await Promise.all(calls.flatMap((text) => [1, 2].map(() => source.process(fetchOf(text, { id: 's1' }, ADA, undefined, 'mutation')))));
      expect(received).toHaveLength(6);
      expect(shared).toEqual([]);
    });

    it("never lets a query begun after its caller's mutation join a call begun before it; other callers still share", async () => {
      delayMs = 300;
      const writes = new WriteEpochs();
      const { source, shared } = sourceFor({ writes });
      const before = source.process(fetchOf(STORY));
      await vi.waitFor(() => expect(received).toHaveLength(1), { timeout: 2_000 });
      delayMs = 20;
      await source.process(fetchOf('mutation{publish(id:"s1"){ok}}'));
      // Ada's first query is still in flight (300 ms): hers now is sent anew; Bob's two share one.
      const after = source.process(fetchOf(STORY));
      const bo = [source.process(fetchOf(STORY, { id: 's1' }, BOB)), source.process(fetchOf(STORY, { id: 's1' }, BOB))];
      await Promise.all([before, after, ...bo]);
      expect(received.map((r) => r.caller.userId)).toEqual(['u-ada', 'u-ada', 'u-ada', 'u-bob']);
      expect(shared).toEqual(['story']);
    });

    it('WriteEpochs stays bounded, and a caller it dropped is past every point it had', () => {
      const writes = new WriteEpochs(2);
      writes.bump('a');
      const aWrote = writes.of('a');
      writes.bump('b');
      writes.bump('c'); // drops a
      expect(writes.of('a')).toBeGreaterThanOrEqual(aWrote);
      expect(writes.of('b')).toBeGreaterThan(aWrote);
    });

    it('sends every call when turned off', async () => {
      delayMs = 20;
      const { source, shared } = sourceFor({ dedupe: false });
      await Promise.all(Array.from({ length: 3 }, () => source.process(fetchOf(STORY))));
      expect(received).toHaveLength(3);
      expect(shared).toEqual([]);
    });

    it('gives every sharer the failure, each its own error, counted once against the subgraph', async () => {
      delayMs = 30;
      behaviour = 'broken';
      const { source, fetches } = sourceFor({ failureThreshold: 2 });
      const errors = await Promise.all(Array.from({ length: 4 }, () => source.process(fetchOf(STORY)).catch((e: unknown) => e)));
      expect(received).toHaveLength(1);
      for (const error of errors) expect(error).toMatchObject({ extensions: { code: 'SUBGRAPH_UNAVAILABLE', subgraph: 'story' } });
      expect(new Set(errors).size).toBe(4);
      expect(fetches.map((f) => f.outcome)).toEqual(['error']);
      expect(source.breaker.state).toBe('CLOSED');

      behaviour = 'stall-body';
      const { source: slow } = sourceFor({ timeoutMs: 100 });
      const timeouts = await Promise.all(Array.from({ length: 3 }, () => slow.process(fetchOf(STORY)).catch((e: unknown) => e)));
      for (const error of timeouts) expect(error).toMatchObject({ extensions: { code: 'SUBGRAPH_TIMEOUT', subgraph: 'story' } });
      expect(received).toHaveLength(2);
    });
  });

  describe('connections', () => {
    it('keeps connections alive and reuses them, opening no more than maxSockets', async () => {
      const before = connections;
      const { source } = sourceFor({ maxSockets: 3 });
      for (let i = 0; i < 10; i++) await source.process(fetchOf(STORY, { id: `s${i}` }));
      expect(connections - before).toBe(1);

      delayMs = 20;
      await Promise.all(Array.from({ length: 8 }, (_, i) => source.process(fetchOf(STORY, { id: `t${i}` }))));
      expect(connections - before).toBe(3);
      await Promise.all(Array.from({ length: 8 }, (_, i) => source.process(fetchOf(STORY, { id: `u${i}` }))));
      expect(connections - before).toBe(3);
      expect(received).toHaveLength(26);

      source.close();
      await vi.waitFor(() => expect(open.size).toBe(0));
    });

    it('sends a query again on a fresh connection when a kept-alive one turns out closed; a mutation not', async () => {
      const { source, fetches } = sourceFor();
      await source.process(fetchOf(STORY));
      dropNextOnReusedSocket = true;
      expect(await source.process(fetchOf(STORY, { id: 's2' }))).toMatchObject({ data: { echo: { variables: { id: 's2' } } } });
      expect(fetches.map((f) => f.outcome)).toEqual(['ok', 'ok']);

      dropNextOnReusedSocket = true;
      await expect(source.process(fetchOf('mutation{publish(id:"s1"){ok}}'))).rejects.toMatchObject({ extensions: { code: 'SUBGRAPH_UNAVAILABLE' } });
      expect(fetches.map((f) => f.outcome)).toEqual(['ok', 'ok', 'error']);
    });

    // openssl makes the certificate (Node cannot): it is on every machine this runs on (Debian's, the image's).
    it('calls an https:// subgraph', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'subgraph-tls-'));
      const previous = process.env.NODE_TLS_REJECT_UNAUTHORIZED;
      try {
        execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
          '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
        const secure = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, handler);
        const secureUrl = `${(await listenOn(secure)).replace('http:', 'https:')}/graphql`;
        // The self-signed certificate is not one Node trusts; a deployment names its CA in NODE_EXTRA_CA_CERTS.
        process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
        const { source } = sourceFor({ url: secureUrl });
        expect(await source.process(fetchOf(STORY))).toEqual({ data: { echo: { variables: { id: 's1' }, userId: 'u-ada', nth: 1 } } });
        source.close();
        secure.closeAllConnections();
        await closeServer(secure);
      } finally {
        if (previous === undefined) delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
        else process.env.NODE_TLS_REJECT_UNAUTHORIZED = previous;
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});

