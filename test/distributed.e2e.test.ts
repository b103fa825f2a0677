import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { clientOperation } from './support/clients.js';
import { startDistributed, type DistributedStack } from './support/distributed.js';
import { startOtlpCollector } from './fakes/otlp-collector.js';
import { startFakeOidcIssuer, type FakeOidcIssuer } from './fakes/oidc-issuer.js';
import { analysisCompleted, registerMember, TALE } from './support/people.js';

/**
 * The distributed mode for real: every subgraph and the gateway as separate processes, each
 * subgraph connecting to PostgreSQL as its own role, the events over a real nats-server.
 */
let stack: DistributedStack;
let collector: Awaited<ReturnType<typeof startOtlpCollector>>;
let google: FakeOidcIssuer;
let adminToken: string;
beforeAll(async () => {
  collector = await startOtlpCollector();
  google = await startFakeOidcIssuer();
  stack = await startDistributed({
    natsUrl: inject('natsUrl'),
    env: {
      SUBGRAPH_CIRCUIT_FAILURES: '2',
      SUBGRAPH_CIRCUIT_RESET_MS: '3000',
      SUBGRAPH_TIMEOUT_MS: '5000',
      OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint,
      ADMIN_EMAILS: ADMIN_EMAIL,
      GOOGLE_CLIENT_ID: 'google-client',
      GOOGLE_JWKS_URL: google.jwksUrl,
      GOOGLE_ISSUER: google.issuerUrl,
      IDENTITY_DELETION_RETRY_MS: '1000',
      SHUTDOWN_DELAY_MS: '2000',
    },
  });
  // An ADMIN_EMAILS address is admin once a provider vouched for it.
  const idToken = await google.signIdToken({ sub: 'g-admin', aud: 'google-client', email: ADMIN_EMAIL, email_verified: true, name: 'Admin' });
  const signedIn = await stack.gql(clientOperation('SignInWithProvider'), { input: { provider: 'GOOGLE', idToken } });
  expect(signedIn.data.signInWithProvider.userErrors).toEqual([]);
  adminToken = signedIn.data.signInWithProvider.session.accessToken;
}, 180_000);
afterAll(async () => {
  await stack?.close();
  await collector?.close();
  await google?.stop();
});

const ADMIN_EMAIL = `admin-${randomUUID().slice(0, 8)}@example.com`;

/** The run's database as its administrator: what no subgraph role may read, a test may. */
async function asAdmin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: stack.databaseUrl });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

const eventually = <T>(check: () => Promise<T>, timeout = 30_000) => vi.waitFor(check, { timeout, interval: 100 });

async function asRole<T>(subgraph: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: stack.roleUrls[subgraph] });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

describe('the distributed mode', () => {
  it('runs the identity, billing and story client flows through the gateway', async () => {
    const ada = await registerMember(stack, 'Ada');
    const me = await stack.gql(clientOperation('Me'), {}, { token: ada.token });
    expect(me.errors).toBeUndefined();
    expect(me.data.me).toMatchObject({ id: ada.id, displayName: 'Ada', membership: { status: 'ACTIVE', plan: { tier: 'FREE' } } });

    const plans = await stack.gql(clientOperation('Plans'));
    expect(plans.data.plans.map((p: { tier: string }) => p.tier)).toEqual(['FREE', 'SILVER', 'GOLD', 'PLATINUM']);
    const upgrade = await stack.gql(clientOperation('ChangePlan'), { tier: 'GOLD' }, { token: ada.token });
    expect(upgrade.data.changePlan).toMatchObject({ membership: { plan: { tier: 'GOLD' } }, invoice: { amountCents: 1999 }, userErrors: [] });

    const created = await stack.gql(clientOperation('CreateStory'), { input: { title: 'The Lighthouse', content: TALE } }, { token: ada.token });
    expect(created.data.createStory.userErrors).toEqual([]);
    const storyId = created.data.createStory.story.id as string;
    expect((await stack.gql(clientOperation('PublishStory'), { id: storyId }, { token: ada.token })).data.publishStory.userErrors).toEqual([]);
    await analysisCompleted(stack, ada.token, storyId);
    const story = await stack.gql(clientOperation('Story'), { id: storyId }, { token: ada.token });
    expect(story.errors).toBeUndefined();
    expect(story.data.story).toMatchObject({ title: 'The Lighthouse', status: 'PUBLISHED', author: { id: ada.id, displayName: 'Ada', membership: { plan: { tier: 'GOLD' } } } });
    expect(story.data.story.analysis.characters.map((c: { name: string }) => c.name).sort()).toEqual(['Mira', 'Old Tom']);
    const feed = await stack.gql(clientOperation('PublishedStories'), { first: 10 });
    expect(feed.data.publishedStories.edges.map((e: { node: { id: string } }) => e.node.id)).toContain(storyId);
  });

  it("gives each subgraph a role of its own: reading another subgraph's table is denied by PostgreSQL", async () => {
    const denied = await asRole('story', (client) => client.query('select * from identity."user" limit 1').then(() => null, (error: { code?: string; message: string }) => error));
    expect(denied).toMatchObject({ code: '42501' });
    expect(denied!.message).toMatch(/permission denied/);
    const deniedWrite = await asRole('billing', (client) => client.query(`insert into story.outbox (id, type, envelope, created_at) values ($1, 'x', '{}', now())`, [randomUUID()]).then(() => null, (error: { code?: string }) => error));
    expect(deniedWrite).toMatchObject({ code: '42501' });
    // Its own tables are its own.
    const own = await asRole('identity', (client) => client.query('select count(*)::int as n from identity."user"'));
    expect(own.rows[0].n).toBeGreaterThan(0);
  });

  it('follows one request in one trace: the gateway, the subgraph, and across NATS the consumer of its event', async () => {
    const traceId = randomUUID().replaceAll('-', '');
    const register = await stack.gql(
      clientOperation('Register'),
      { input: { email: `traced-${randomUUID().slice(0, 8)}@example.com`, password: 'correct horse battery', displayName: 'Traced' } },
      { headers: { traceparent: `00-${traceId}-${'1'.repeat(16)}-01` } },
    );
    expect(register.data.register.userErrors).toEqual([]);
    // The gateway starts the trace itself and links the client's span (a client does not choose the trace).
    const clientSpan = `${traceId}:${'1'.repeat(16)}`;
    const gatewaySpan = await eventually(async () => {
      const found = collector.spans.find((span) => span.links.includes(clientSpan));
      expect(found).toBeDefined();
      return found!;
    });
    expect(gatewaySpan.traceId).not.toBe(traceId);
    const inTrace = () => collector.spans.filter((span) => span.traceId === gatewaySpan.traceId);
    // Spans are exported in batches (every few seconds): wait for the consumer's.
    await eventually(async () => expect(inTrace().some((span) => span.service === 'storyloom-billing' && span.name === 'consume user.registered')).toBe(true));
    const spans = inTrace();
    const byId = new Map(spans.map((span) => [span.spanId, span]));
    const gateway = spans.find((span) => span.service === 'storyloom-gateway' && span.name === 'gateway POST /graphql')!;
    const identity = spans.find((span) => span.service === 'storyloom-identity' && span.name === 'identity POST /graphql')!;
    const consumer = spans.find((span) => span.service === 'storyloom-billing' && span.name === 'consume user.registered')!;
    expect(gateway).toMatchObject({ kind: 2, parentSpanId: null, spanId: gatewaySpan.spanId });
    expect(identity).toMatchObject({ kind: 2, attributes: { 'storyloom.service': 'identity' } });
    expect(consumer).toMatchObject({ kind: 5, attributes: { 'messaging.destination.name': 'events.user.registered', 'messaging.consumer.group.name': 'billing' } });
    // Each one descends from the one before: consumer -> identity's request -> gateway's request.
    const ancestors = (span: (typeof spans)[number]) => {
      const chain: string[] = [];
      for (let parent = byId.get(span.parentSpanId ?? ''); parent; parent = byId.get(parent.parentSpanId ?? '')) chain.push(parent.spanId);
      return chain;
    };
    expect(ancestors(identity)).toContain(gateway.spanId);
    expect(ancestors(consumer)).toContain(identity.spanId);
    // @apollo/gateway's own spans (execute, fetch; plan when the plan is not cached) sit between the gateway's request and identity's.
    expect(spans.filter((span) => span.service === 'storyloom-gateway').map((span) => span.name)).toEqual(expect.arrayContaining(['gateway.request', 'gateway.execute', 'gateway.fetch']));
  });

  it('serves every process\'s /health, /ready and Prometheus /metrics', async () => {
    for (const process of stack.processes.values()) {
      expect((await fetch(`${process.url}/health`)).status, `${process.name} /health`).toBe(200);
      const ready = await fetch(`${process.adminUrl}/ready`);
      const body = (await ready.json()) as { status: string; checks: Record<string, string> };
      expect([process.name, ready.status, body.status]).toEqual([process.name, 200, 'ready']);
      expect(Object.values(body.checks).every((check) => check === 'ok')).toBe(true);
      const metrics = await (await fetch(`${process.adminUrl}/metrics`)).text();
      expect(metrics, `${process.name} /metrics`).toContain('storyloom_process_resident_memory_bytes');
      expect(metrics).toContain('storyloom_graphql_requests_total');
    }
    // The gateway keeps them off its public port (ADMIN_PORT).
    for (const path of ['/ready', '/metrics']) expect((await fetch(`${stack.processes.get('gateway')!.url}${path}`)).status, path).toBe(404);
    const gateway = await (await fetch(`${stack.processes.get('gateway')!.adminUrl}/metrics`)).text();
    expect(gateway).toMatch(/storyloom_graphql_requests_total\{service="gateway",operation="Register",outcome="ok"\} [1-9]/);
    expect(gateway).toMatch(/storyloom_gateway_subgraph_fetches_total\{subgraph="identity",outcome="ok"\} [1-9]/);
    expect(gateway).toContain('storyloom_active_subscriptions 0');
    const billing = await (await fetch(`${stack.processes.get('billing')!.url}/metrics`)).text();
    expect(billing).toMatch(/storyloom_events_handled_total\{subgraph="billing",consumer="billing"\} [1-9]/);
    expect(billing).toMatch(/storyloom_outbox_backlog\{subgraph="billing"\} \d/);
    expect(billing).toMatch(/storyloom_consumer_pending_events\{consumer="billing"\} \d/);
    const narration = await (await fetch(`${stack.processes.get('narration')!.url}/metrics`)).text();
    expect(narration).toMatch(/storyloom_job_queue_depth\{queue="[a-z-]+"\} 0/);
  });

  it('answers around a story subgraph that was killed, and after its restart it consumes what was published meanwhile, once', async () => {
    const ada = await registerMember(stack, 'Ada');
    const created = await stack.gql(clientOperation('CreateStory'), { input: { title: 'Before the storm', content: TALE } }, { token: ada.token });
    const storyId = created.data.createStory.story.id as string;
    const both = `query($id: ID!) { me { id displayName membership { plan { tier } } } story(id: $id) { id title } }`;
    expect((await stack.gql(both, { id: storyId }, { token: ada.token })).errors).toBeUndefined();

    const killedAt = await asAdmin(async (client) => (await client.query('select now() as at')).rows[0].at as Date);
    await stack.kill('story');
    // Identity (and billing) alone: unaffected.
    const me = await stack.gql(clientOperation('Me'), {}, { token: ada.token });
    expect(me.errors).toBeUndefined();
    expect(me.data.me).toMatchObject({ id: ada.id, membership: { plan: { tier: 'FREE' } } });
    // Touching stories: what identity knows, null for the story, and an error naming the subgraph.
    const partial = await stack.gql(both, { id: storyId }, { token: ada.token });
    expect(partial.data).toEqual({ me: { id: ada.id, displayName: 'Ada', membership: { plan: { tier: 'FREE' } } }, story: null });
    expect(partial.errors).toEqual([{ message: 'The story service is unavailable', extensions: { code: 'SUBGRAPH_UNAVAILABLE', subgraph: 'story' } }]);
    // After repeated failures (2 here) the circuit is open: the gateway answers at once without trying.
    await stack.gql(both, { id: storyId }, { token: ada.token });
    const failedFast = await stack.gql(both, { id: storyId }, { token: ada.token });
    expect(failedFast.errors?.[0]?.extensions).toEqual({ code: 'SUBGRAPH_UNAVAILABLE', subgraph: 'story' });
    const gatewayMetrics = await (await fetch(`${stack.processes.get('gateway')!.adminUrl}/metrics`)).text();
    expect(gatewayMetrics).toMatch(/storyloom_gateway_circuit_state\{subgraph="story"\} 2/);
    expect(gatewayMetrics).toMatch(/storyloom_gateway_subgraph_fetches_total\{subgraph="story",outcome="rejected"\} [1-9]/);

    // Meanwhile billing publishes events story follows (plans: story enforces stories per month).
    const bo = await registerMember(stack, 'Bo');
    await registerMember(stack, 'Cy');
    expect((await stack.gql(clientOperation('ChangePlan'), { tier: 'SILVER' }, { token: bo.token })).data.changePlan.userErrors).toEqual([]);
    const published = await eventually(async () => {
      const { rows } = await asAdmin((client) =>
        client.query<{ id: string; published: boolean }>(`select id::text, published_at is not null as published from billing.outbox where type like 'subscription.%' and created_at > $1`, [killedAt]),
      );
      expect(rows.length).toBe(3);
      expect(rows.every((row) => row.published)).toBe(true);
      return rows.map((row) => row.id);
    });

    await stack.restart('story');
    await eventually(async () => expect((await stack.gql(both, { id: storyId }, { token: ada.token })).errors).toBeUndefined());
    await eventually(async () => {
      const { rows } = await asAdmin((client) => client.query(`select event_id, count(*)::int as n from story.inbox where consumer = 'story-projections' and event_id = any($1) group by event_id`, [published]));
      expect(rows.map((row) => row.n).sort()).toEqual([1, 1, 1]);
    });
    // And it acted on them: Bo's SILVER plan lets him write a fourth story this month (FREE stops at 3).
    for (let n = 1; n <= 4; n++) {
      const res = await stack.gql(clientOperation('CreateStory'), { input: { title: `Bo ${n}`, content: TALE } }, { token: bo.token });
      expect(res.data.createStory.userErrors, `story ${n}`).toEqual([]);
    }
  });

  it('stops a subgraph on SIGTERM: not ready at once but still serving for SHUTDOWN_DELAY_MS, then clean (exit 0, no error logged); it resumes where it stopped', async () => {
    const billing = stack.processes.get('billing')!;
    const before = billing.output().length;
    const cy = await registerMember(stack, 'Cy');
    await eventually(async () => expect((await stack.gql(clientOperation('Me'), {}, { token: cy.token })).data.me.membership?.plan.tier).toBe('FREE'));
    const exited = stack.terminate('billing');
    await eventually(async () => expect((await fetch(`${billing.adminUrl}/ready`)).status).toBe(503), 1_500);
    // Still serving meanwhile: a query that needs billing answers in full.
    const during = await stack.gql(clientOperation('Me'), {}, { token: cy.token });
    expect(during.errors).toBeUndefined();
    expect(during.data.me.membership.plan.tier).toBe('FREE');
    expect(await exited).toBe(0);
    const stopping = billing.output().slice(before);
    expect(stopping).toContain('"msg":"shutting down"');
    expect(stopping).toContain('"msg":"stopped"');
    expect(stopping.split('\n').filter((line) => /"level":(50|60)/.test(line))).toEqual([]);
    // A member registered while billing is away gets the FREE membership once it is back.
    const dee = await registerMember(stack, 'Dee');
    await stack.restart('billing');
    await eventually(async () => {
      const me = await stack.gql(clientOperation('Me'), {}, { token: dee.token });
      expect(me.errors).toBeUndefined();
      expect(me.data.me.membership).toMatchObject({ status: 'ACTIVE', plan: { tier: 'FREE' } });
    });
  });

  it('completes a deletion saga with every step; with a subgraph down it waits, asks again, and completes after the restart', async () => {
    const deletion = `query($userId: ID!) { userDeletion(userId: $userId) { status completedAt steps { service status attempts at } } }`;
    const stateOf = async (userId: string) => {
      const res = await stack.gql(deletion, { userId }, { token: adminToken });
      expect(res.errors).toBeUndefined();
      return res.data.userDeletion as { status: string; completedAt: string | null; steps: { service: string; status: string; attempts: number; at: string | null }[] };
    };
    const userRow = (userId: string) => asAdmin(async (client) => (await client.query(`select 1 from identity."user" where id = $1`, [userId])).rowCount);

    // Everyone up: every step reports, and the account is gone for good.
    const eve = await registerMember(stack, 'Eve');
    expect((await stack.gql(clientOperation('DeleteAccount'), {}, { token: eve.token })).data.deleteAccount).toMatchObject({ deletedUserId: eve.id, userErrors: [] });
    await eventually(async () => expect((await stateOf(eve.id)).status).toBe('COMPLETED'));
    const done = await stateOf(eve.id);
    expect(done.steps.map((step) => step.service).sort()).toEqual(['audit', 'billing', 'collaboration', 'narration', 'notification', 'story', 'video']);
    expect(done.steps.every((step) => step.status === 'DONE' && step.at)).toBe(true);
    expect(await userRow(eve.id)).toBe(0);

    // Story down: its step waits, identity asks again every second, the account stays until it answers.
    const fay = await registerMember(stack, 'Fay');
    const storyId = (await stack.gql(clientOperation('CreateStory'), { input: { title: 'Left behind', content: TALE } }, { token: fay.token })).data.createStory.story.id as string;
    await stack.kill('story');
    expect((await stack.gql(clientOperation('DeleteAccount'), {}, { token: fay.token })).data.deleteAccount.userErrors).toEqual([]);
    await eventually(async () => {
      const state = await stateOf(fay.id);
      expect(state.status).toBe('IN_PROGRESS');
      expect(state.steps.filter((step) => step.status === 'DONE').map((step) => step.service).sort()).toEqual(['audit', 'billing', 'collaboration', 'narration', 'notification', 'video']);
      expect(state.steps.find((step) => step.service === 'story')!.attempts).toBeGreaterThanOrEqual(3);
    });
    expect(await userRow(fay.id)).toBe(1);
    // Signed out already: the account behaves as deleted while the saga runs.
    expect((await stack.gql(clientOperation('Me'), {}, { token: fay.token })).errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');

    await stack.restart('story');
    await eventually(async () => expect((await stateOf(fay.id)).status).toBe('COMPLETED'));
    expect((await stateOf(fay.id)).steps.every((step) => step.status === 'DONE')).toBe(true);
    expect(await userRow(fay.id)).toBe(0);
    // Story archived her story once it was back.
    const archived = await asAdmin((client) => client.query(`select status from story.story where id = $1`, [storyId]));
    expect(archived.rows[0]?.status).toBe('ARCHIVED');
  });

  it("shares a user's rate limit between gateway replicas through NATS KV", async () => {
    // Two more gateway processes, limiting each user to 4 requests (1 more a second) in a KV bucket of their own.
    const limits = { RATE_LIMIT_USER_BURST: '4', RATE_LIMIT_USER_PER_SECOND: '1', RATE_LIMIT_KV_BUCKET: `rl_replicas_${randomUUID().slice(0, 8)}`, SHUTDOWN_DELAY_MS: '0' };
    const replicas = await Promise.all([stack.startGateway(limits), stack.startGateway(limits)]);
    try {
      const [one, two] = replicas as [(typeof replicas)[number], (typeof replicas)[number]];
      const ask = (replica: typeof one, token: string) =>
        fetch(replica.gatewayUrl, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query: '{ __typename }' }) });
      const gus = await registerMember(stack, 'Gus');
      // Each replica fetches the signing keys and plans the query once, with another member's token:
      // slow first requests would let Gus's bucket refill between his takes.
      const warm = await registerMember(stack, 'Hal');
      expect((await Promise.all([ask(one, warm.token), ask(two, warm.token)])).map((res) => res.status)).toEqual([200, 200]);

      const passed = await Promise.all([one, one, two, two].map((replica) => ask(replica, gus.token)));
      expect(passed.map((res) => res.status)).toEqual([200, 200, 200, 200]);
      const refused = await Promise.all([ask(one, gus.token), ask(two, gus.token)]);
      expect(refused.map((res) => res.status)).toEqual([429, 429]);
      expect(await refused[0]!.json()).toMatchObject({ errors: [{ extensions: { code: 'RATE_LIMITED' } }] });
      expect(Number(refused[1]!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      // Each replica counted its own refusal; neither failed to reach the store (it would have let them pass).
      for (const replica of replicas) {
        const metrics = await (await fetch(`${replica.adminUrl}/metrics`)).text();
        expect(metrics, replica.name).toMatch(/^storyloom_gateway_rate_limited_total\{bucket="user"\} 1$/m);
        expect(metrics, replica.name).toMatch(/^storyloom_gateway_rate_limit_store_errors_total 0$/m);
      }
      expect(await Promise.all(replicas.map((replica) => replica.stop()))).toEqual([0, 0]);
    } finally {
      await Promise.all(replicas.map((replica) => replica.stop()));
    }
  });
});
