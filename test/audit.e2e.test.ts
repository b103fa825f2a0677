import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createEnvelope } from '../platform/events/envelope.js';
import { signCaller, type Caller } from '../platform/internal-auth.js';
import { startFakeOidcIssuer, type FakeOidcIssuer } from './fakes/oidc-issuer.js';
import { clientOperation } from './support/clients.js';
import { runNpm } from './support/npm.js';
import { startTestStack, type TestStack } from './support/stack.js';
import { subgraphModules } from '../subgraphs/index.js';

/** The admin event log (../shared/clients/admin.graphql `Events`), fed by the audit consumer. */
const op = {
  events: clientOperation('Events'),
  register: clientOperation('Register'),
  logIn: clientOperation('LogIn'),
  signIn: clientOperation('SignInWithProvider'),
};

interface EventNode {
  id: string;
  type: string;
  serviceName: string;
  timestamp: string;
  correlationId: string | null;
  causationId: string | null;
  userId: string | null;
  payload: any;
}

let stack: TestStack;
let google: FakeOidcIssuer;
let adminToken: string;
let ada: { id: string; token: string; correlationId: string };
let grace: { id: string; registeredWith: string; loggedInWith: string };

const register = async (email: string, correlationId: string) => {
  const res = await stack.gql(
    op.register,
    { input: { email, password: 'correct horse battery', displayName: email.split('@')[0] } },
    { headers: { 'x-correlation-id': correlationId } },
  );
  expect(res.data.register.userErrors).toEqual([]);
  return { id: res.data.register.user.id as string, token: res.data.register.session.accessToken as string };
};

/** The Events query, as the admin unless another token (or null: none) is given. */
const events = (variables: Record<string, unknown>, token: string | null = adminToken) => stack.gql(op.events, variables, token ? { token } : {});
const nodes = (res: { data?: any }): EventNode[] => res.data.events.edges.map((e: { node: EventNode }) => e.node);

/**
 * Identity's `user.*` events the log holds for `userId`, once `ready` says the consumer has
 * caught up. (Other subgraphs react to them with events of their own about the same user.)
 */
const waitForLog = (userId: string, ready: (found: EventNode[]) => boolean) =>
  vi.waitFor(
    async () => {
      const res = await events({ userId, type: 'user.*', first: 100 });
      expect(res.errors).toBeUndefined();
      const found = nodes(res);
      if (!ready(found)) throw new Error(`event log not caught up: ${found.map((e) => e.type).join(', ') || 'empty'}`);
      return found;
    },
    { timeout: 5000, interval: 50 },
  );

beforeAll(async () => {
  google = await startFakeOidcIssuer();
  stack = await startTestStack({
    env: { ADMIN_EMAILS: 'admin@example.com', GOOGLE_CLIENT_ID: 'google-client', GOOGLE_JWKS_URL: google.jwksUrl, GOOGLE_ISSUER: google.issuerUrl },
  });
  // An ADMIN_EMAILS address is admin once a provider vouched for it.
  const idToken = await google.signIdToken({ sub: 'g-admin', aud: 'google-client', email: 'admin@example.com', email_verified: true, name: 'Admin' });
  const signedIn = await stack.gql(op.signIn, { input: { provider: 'GOOGLE', idToken } });
  expect(signedIn.data.signInWithProvider.userErrors).toEqual([]);
  adminToken = signedIn.data.signInWithProvider.session.accessToken;

  const adaCorrelation = `test-${randomUUID()}`;
  ada = { ...(await register('ada@example.com', adaCorrelation)), correlationId: adaCorrelation };
  const [registeredWith, loggedInWith] = [`test-${randomUUID()}`, `test-${randomUUID()}`];
  grace = { id: (await register('grace@example.com', registeredWith)).id, registeredWith, loggedInWith };
  const login = await stack.gql(
    op.logIn,
    { input: { email: 'grace@example.com', password: 'correct horse battery' } },
    { headers: { 'x-correlation-id': grace.loggedInWith } },
  );
  expect(login.data.logIn.userErrors).toEqual([]);
});

afterAll(async () => {
  await stack?.close();
  await google?.stop();
});

describe('the event log through the gateway', () => {
  it("shows an admin each user's events newest first, with the request's correlation id", async () => {
    const log = await waitForLog(grace.id, (found) => found.length === 2);
    expect(log.map((e) => e.type)).toEqual(['user.login', 'user.registered']);
    expect(log[0]).toMatchObject({ serviceName: 'identity', userId: grace.id, correlationId: grace.loggedInWith, causationId: null, payload: { userId: grace.id, provider: 'local' } });
    expect(log[1]).toMatchObject({ serviceName: 'identity', userId: grace.id, correlationId: grace.registeredWith, payload: { email: 'grace@example.com', provider: 'local' } });
    expect(Date.parse(log[0]!.timestamp)).toBeGreaterThanOrEqual(Date.parse(log[1]!.timestamp));

    const adaLog = await waitForLog(ada.id, (found) => found.length === 1);
    expect(adaLog[0]).toMatchObject({ type: 'user.registered', correlationId: ada.correlationId });
  });

  it('filters by type pattern (user.*, user.>, an exact type) and by user', async () => {
    // Grace's login is identity's last event and the log takes the stream in order: once it
    // is there, so is every identity event before it.
    await waitForLog(grace.id, (found) => found.length === 2);
    const types = async (type: string) => {
      const res = await events({ type, first: 100 });
      expect(res.errors).toBeUndefined();
      return nodes(res).map((e) => e.type);
    };
    // The admin's Google sign-up also published user.oauth.linked: three tokens, so not user.*.
    expect(new Set(await types('user.*'))).toEqual(new Set(['user.registered', 'user.login']));
    expect(new Set(await types('user.>'))).toEqual(new Set(['user.registered', 'user.login', 'user.oauth.linked']));
    expect(await types('user.oauth.linked')).toEqual(['user.oauth.linked']);
    expect(await types('user.login')).toEqual(['user.login']);
    expect(await types('story.>')).toEqual([]);

    const adasLogins = await events({ userId: ada.id, type: 'user.login' });
    expect(adasLogins.data.events.totalCount).toBe(0);
  });

  it('pages with after, hasNextPage and a totalCount that honours the filters', async () => {
    const all = await waitForLog(grace.id, (found) => found.length === 2);
    const first = await events({ userId: grace.id, type: 'user.*', first: 1 });
    expect(first.data.events).toMatchObject({ totalCount: 2, pageInfo: { hasNextPage: true } });
    expect(nodes(first).map((e) => e.id)).toEqual([all[0]!.id]);
    const second = await events({ userId: grace.id, type: 'user.*', first: 1, after: first.data.events.pageInfo.endCursor });
    expect(second.data.events).toMatchObject({ totalCount: 2, pageInfo: { hasNextPage: false } });
    expect(nodes(second).map((e) => e.id)).toEqual([all[1]!.id]);

    const everything = await events({ first: 100 });
    const registered = await events({ type: 'user.registered' });
    expect(registered.data.events.totalCount).toBe(3);
    expect(everything.data.events.totalCount).toBeGreaterThan(registered.data.events.totalCount);
  });

  it('refuses a bad pattern, a bad cursor and a bad user id', async () => {
    for (const variables of [{ type: 'user.>.login' }, { type: 'user..login' }, { after: 'not-a-cursor' }, { userId: 'ada' }]) {
      const res = await events(variables);
      expect(res.errors?.[0]?.extensions?.code, JSON.stringify(variables)).toBe('BAD_USER_INPUT');
    }
  });

  it('serves any JSON payload, null included', async () => {
    const type = `odd${randomUUID().slice(0, 8)}.payload`;
    const published = [null, 'a bare string', [1, { b: true }]].map((payload) => createEnvelope({ type, payload }, { serviceName: 'test' }));
    for (const event of published) await stack.transport.publish(event);
    const found = await vi.waitFor(
      async () => {
        const res = await events({ type });
        expect(res.errors).toBeUndefined();
        expect(nodes(res)).toHaveLength(3);
        return nodes(res);
      },
      { timeout: 5000, interval: 50 },
    );
    expect(found.map((e) => e.payload).sort()).toEqual(published.map((e) => e.payload).sort());
  });

  it('pages through events whose publisher gave microseconds, none falling between pages', async () => {
    const type = `micro${randomUUID().slice(0, 8)}.tick`;
    for (const timestamp of ['2026-11-01T10:00:00.123400Z', '2026-11-01T10:00:00.123456Z', '2026-11-01T10:00:00.123500Z']) {
      await stack.transport.publish({ ...createEnvelope({ type, payload: {} }, { serviceName: 'test' }), timestamp });
    }
    await vi.waitFor(async () => expect((await events({ type })).data.events.totalCount).toBe(3), { timeout: 5000, interval: 50 });
    const seen: string[] = [];
    let after: string | null = null;
    do {
      const page: any = (await events({ type, first: 1, after })).data.events;
      seen.push(...page.edges.map((edge: { node: EventNode }) => edge.node.id));
      after = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
    } while (after);
    expect(new Set(seen).size).toBe(3);
  });

  it('is for admins only', async () => {
    const notAdmin = await events({}, ada.token);
    expect(notAdmin.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const anonymous = await events({}, null);
    expect(anonymous.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });
});

describe('the operator views', () => {
  const systemStatus = clientOperation('SystemStatus');
  const deadLettersQuery = `query DeadLetters($first: Int, $after: String, $consumer: String) {
    deadLetters(first: $first, after: $after, consumer: $consumer) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { node { id subgraph consumer error attempts failedAt replayedAt event { id type payload } } }
    }
  }`;
  const replay = `mutation Replay($id: ID!) {
    replayDeadLetter(id: $id) { deadLetter { id replayedAt } userErrors { code field message } }
  }`;

  it('systemStatus shows the mode, the transport, healthy subgraphs and the consumers', async () => {
    const res = await stack.gql(systemStatus, {}, { token: adminToken });
    expect(res.errors).toBeUndefined();
    const status = res.data.systemStatus;
    expect(status.mode).toBe('ALL_IN_ONE');
    expect(status.eventTransport).toBe('NATS');
    expect(status.subgraphs.map((s: { name: string }) => s.name)).toEqual(subgraphModules.map((m) => m.name));
    expect(status.subgraphs.map((s: { name: string }) => s.name)).toEqual(expect.arrayContaining(['identity', 'billing', 'story', 'audit']));
    expect(status.subgraphs.every((s: { healthy: boolean; url: string }) => s.healthy && s.url.endsWith('/graphql'))).toBe(true);
    const consumers = status.consumers.map((c: { name: string }) => c.name);
    expect(consumers).toEqual(expect.arrayContaining(['audit-event-log', 'billing', 'story', 'story-projections']));
    for (const consumer of status.consumers) {
      expect(consumer).toMatchObject({ pending: expect.any(Number), redelivered: expect.any(Number) });
    }
    // The event log has handled the sign-ups of beforeAll.
    expect(status.consumers.find((c: { name: string }) => c.name === 'audit-event-log').lastEventAt).toEqual(expect.any(String));
    expect((await stack.gql(systemStatus, {}, { token: ada.token })).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect((await stack.gql(systemStatus, {})).errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('an event the event log keeps failing on becomes a dead letter an admin sees, and replays once fixed', async () => {
    // A "bug" in the read model: the table refuses this type until the constraint is dropped.
    const db = new pg.Client({ connectionString: stack.databaseUrl });
    await db.connect();
    try {
      await db.query(`alter table audit.event_log add constraint poison_refused check (type <> 'poison.swallowed')`);
      const poison = createEnvelope({ type: 'poison.swallowed', payload: { dose: 1 } }, { serviceName: 'test', correlationId: 'poison-run' });
      const after = createEnvelope({ type: 'poison.survived', payload: {} }, { serviceName: 'test' });
      await stack.transport.publish(poison);
      await stack.transport.publish(after);

      // The consumer retries with backoff, gives up, records the dead letter and moves on.
      const listed = await vi.waitFor(
        async () => {
          const res = await stack.gql(deadLettersQuery, { consumer: 'audit-event-log' }, { token: adminToken });
          expect(res.errors).toBeUndefined();
          expect(res.data.deadLetters.totalCount).toBe(1);
          return res.data.deadLetters.edges[0].node;
        },
        { timeout: 15_000, interval: 100 },
      );
      expect(listed).toMatchObject({ subgraph: 'audit', consumer: 'audit-event-log', attempts: 5, replayedAt: null, event: { id: poison.id, type: 'poison.swallowed', payload: { dose: 1 } } });
      expect(listed.error).toContain('poison_refused');
      await vi.waitFor(async () => expect(nodes(await events({ type: 'poison.survived' }))).toHaveLength(1), { timeout: 5000, interval: 50 });
      expect(nodes(await events({ type: 'poison.swallowed' }))).toHaveLength(0);
      expect((await stack.gql(deadLettersQuery, {}, { token: ada.token })).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');

      // Still broken: the replay says why and the dead letter stays open.
      const failed = await stack.gql(replay, { id: listed.id }, { token: adminToken });
      expect(failed.data.replayDeadLetter.userErrors[0]).toMatchObject({ code: 'HANDLER_FAILED', field: 'id' });

      await db.query(`alter table audit.event_log drop constraint poison_refused`);
      const replayed = await stack.gql(replay, { id: listed.id }, { token: adminToken });
      expect(replayed.data.replayDeadLetter).toMatchObject({ deadLetter: { id: listed.id, replayedAt: expect.any(String) }, userErrors: [] });
      expect(nodes(await events({ type: 'poison.swallowed' }))).toMatchObject([{ id: poison.id, correlationId: 'poison-run' }]);
      const again = await stack.gql(replay, { id: listed.id }, { token: adminToken });
      expect(again.data.replayDeadLetter.userErrors[0]?.code).toBe('ALREADY_REPLAYED');
      expect((await stack.gql(deadLettersQuery, { consumer: 'audit-event-log' }, { token: adminToken })).data.deadLetters.totalCount).toBe(0);
      const unknown = await stack.gql(replay, { id: `audit:${randomUUID()}` }, { token: adminToken });
      expect(unknown.data.replayDeadLetter.userErrors[0]?.code).toBe('NOT_FOUND');
    } finally {
      await db.end();
    }
  });

  it('pages dead letters of several subgraphs newest first, merged, with a consumer filter', async () => {
    const db = new pg.Client({ connectionString: stack.databaseUrl });
    await db.connect();
    try {
      // Dead letters as consumers record them, in two subgraphs' schemas.
      const rows = [
        ['billing', 'billing-usage', '2026-11-02T10:00:00.000Z'],
        ['audit', 'audit-event-log', '2026-11-02T09:00:00.000Z'],
        ['billing', 'billing', '2026-11-02T08:00:00.000Z'],
      ] as const;
      const ids: string[] = [];
      for (const [schema, consumer, failedAt] of rows) {
        const event = createEnvelope({ type: 'paging.probe', payload: { consumer } }, { serviceName: 'test' });
        const id = randomUUID();
        ids.push(`${schema}:${id}`);
        await db.query(
          `insert into ${schema}.dead_letter (id, consumer, event_id, event_type, envelope, error, attempts, failed_at) values ($1, $2, $3, $4, $5, 'boom', 5, $6)`,
          [id, consumer, event.id, event.type, JSON.stringify(event), failedAt],
        );
      }
      const seen: string[] = [];
      let after: string | null = null;
      do {
        const res: any = await stack.gql(deadLettersQuery, { first: 1, after }, { token: adminToken });
        expect(res.errors).toBeUndefined();
        expect(res.data.deadLetters.totalCount).toBe(3);
        seen.push(...res.data.deadLetters.edges.map((edge: { node: { id: string } }) => edge.node.id));
        after = res.data.deadLetters.pageInfo.hasNextPage ? res.data.deadLetters.pageInfo.endCursor : null;
      } while (after);
      expect(seen).toEqual(ids);
      const filtered = await stack.gql(deadLettersQuery, { consumer: 'billing-usage' }, { token: adminToken });
      expect(filtered.data.deadLetters).toMatchObject({ totalCount: 1, edges: [{ node: { id: ids[0], subgraph: 'billing', consumer: 'billing-usage' } }] });
      expect((await stack.gql(deadLettersQuery, { after: 'not-a-cursor' }, { token: adminToken })).errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    } finally {
      await db.query(`delete from billing.dead_letter where event_type = 'paging.probe'`);
      await db.query(`delete from audit.dead_letter where event_type = 'paging.probe'`);
      await db.end();
    }
  });

  it('the internal consumer route answers signed admin requests only', async () => {
    const billing = stack.app.subgraphs.find((s) => s.name === 'billing')!;
    const post = (body: unknown, caller?: Caller) =>
      fetch(`${billing.url}/internal/consumers`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(caller ? signCaller(stack.config.INTERNAL_SECRET, { audience: 'billing', caller, correlationId: 'test', operation: { query: '/internal/consumers', variables: body } }) : {}),
        },
        body: JSON.stringify(body),
      });
    expect((await post({ action: 'status' })).status).toBe(401);
    expect((await post({ action: 'status' }, { userId: ada.id, roles: ['USER'] })).status).toBe(403);
    expect((await post({ action: 'dead-letters', limit: 5000 }, { userId: ada.id, roles: ['ADMIN'] })).status).toBe(400);
    const status = await post({ action: 'status' }, { userId: ada.id, roles: ['ADMIN'] });
    expect(status.status).toBe(200);
    expect(((await status.json()) as { consumers: { name: string }[] }).consumers.map((c) => c.name)).toEqual(['billing', 'billing-usage']);
  });

  it('events caused by an event carry its correlation id and name it as their cause', async () => {
    // billing answers user.registered with subscription.created.
    const created = await vi.waitFor(
      async () => {
        const found = nodes(await events({ userId: ada.id, type: 'subscription.created' }));
        expect(found).toHaveLength(1);
        return found[0]!;
      },
      { timeout: 5000, interval: 50 },
    );
    const [registered] = nodes(await events({ userId: ada.id, type: 'user.registered' }));
    expect(created).toMatchObject({ serviceName: 'billing', correlationId: ada.correlationId, causationId: registered!.id });
  });

  it('npm run replay rebuilds the event log from the stream to the same rows', async () => {
    const db = new pg.Client({ connectionString: stack.databaseUrl });
    await db.connect();
    try {
      const rows = async () => (await db.query(`select * from audit.event_log order by "timestamp", "id"`)).rows;
      // Caught up first: the log holds every event of the stream.
      let streamed = 0;
      for await (const _ of stack.transport.history(['>'])) streamed++;
      await vi.waitFor(async () => expect(await rows()).toHaveLength(streamed), { timeout: 10_000, interval: 100 });
      const before = await rows();
      expect(before.length).toBeGreaterThan(5);
      await db.query(`delete from audit.event_log where type like 'user.%'`);
      await db.query(`update audit.event_log set payload = '{"tampered": true}'`);

      const { code, output } = await runNpm(['run', 'replay', '--', 'audit-event-log'], { ...stack.scriptEnv, LOG_LEVEL: 'info' });
      expect(code, output).toBe(0);
      expect(output).toMatch(/"msg":"replay finished"/);
      expect(await rows()).toEqual(before);
    } finally {
      await db.end();
    }
  });

  it('npm run replay refuses a consumer it cannot rebuild, and runs without NATS_URL', async () => {
    const env = stack.scriptEnv;
    const billing = await runNpm(['run', 'replay', '--', 'billing'], env);
    expect(billing.code).toBe(1);
    expect(billing.output).toContain('cannot be replayed');
    const unknown = await runNpm(['run', 'replay', '--', 'nobody'], env);
    expect(unknown.code).toBe(2);
    const noNats = await runNpm(['run', 'replay', '--', 'audit-event-log'], { ...env, NATS_URL: '' });
    expect(noNats.code).toBe(2);
    expect(noNats.output).toContain('set NATS_URL');
  });
});
