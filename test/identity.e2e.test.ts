import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { signCaller, type Caller } from '../platform/internal-auth.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeFacebook, type FakeFacebook } from './fakes/facebook-graph.js';
import { startFakeOidcIssuer, type FakeOidcIssuer } from './fakes/oidc-issuer.js';
import { clientOperation } from './support/clients.js';
import { captureEvents } from './support/capture.js';
import { startTestStack, type TestStack } from './support/stack.js';

/** Every operation of ../shared/clients/identity.graphql, through the gateway, on real PostgreSQL and JetStream. */
const op = {
  register: clientOperation('Register'),
  logIn: clientOperation('LogIn'),
  refresh: clientOperation('RefreshSession'),
  logOut: clientOperation('LogOut'),
  signIn: clientOperation('SignInWithProvider'),
  link: clientOperation('LinkProvider'),
  update: clientOperation('UpdateProfile'),
  delete: clientOperation('DeleteAccount'),
  me: clientOperation('Me'),
};

let stack: TestStack;
let google: FakeOidcIssuer;
let microsoft: FakeOidcIssuer;
let facebook: FakeFacebook;
let events: Awaited<ReturnType<typeof captureEvents>>;
const FB = { appId: 'fb-app-1', appSecret: 'fb-secret-1' };

beforeAll(async () => {
  [google, microsoft, facebook] = await Promise.all([startFakeOidcIssuer(), startFakeOidcIssuer(), startFakeFacebook(FB)]);
  stack = await startTestStack({
    env: {
      ADMIN_EMAILS: 'Boss@Example.com',
      GOOGLE_CLIENT_ID: 'google-client',
      GOOGLE_JWKS_URL: google.jwksUrl,
      GOOGLE_ISSUER: google.issuerUrl,
      MICROSOFT_CLIENT_ID: 'ms-client',
      MICROSOFT_JWKS_URL: microsoft.jwksUrl,
      MICROSOFT_ISSUER: `${microsoft.issuerUrl}/{tenantid}/v2.0`,
      FACEBOOK_APP_ID: FB.appId,
      FACEBOOK_APP_SECRET: FB.appSecret,
      FACEBOOK_GRAPH_URL: facebook.graphUrl,
    },
  });
  events = await captureEvents(stack.transport, ['user.>']);
});

afterAll(async () => {
  await events?.stop();
  await stack?.close();
  await Promise.all([google?.stop(), microsoft?.stop(), facebook?.stop()]);
});

const register = (email: string, password = 'correct horse battery', displayName = 'Ada') =>
  stack.gql(op.register, { input: { email, password, displayName, locale: 'en-gb' } });

describe('identity through the gateway', () => {
  it('registers, answers Me, and publishes user.registered through the outbox', async () => {
    const correlationId = `test-${randomUUID()}`;
    const res = await stack.gql(op.register, { input: { email: 'Ada@Example.com', password: 'correct horse battery', displayName: 'Ada', locale: 'en-gb' } }, { headers: { 'x-correlation-id': correlationId } });
    expect(res.headers.get('x-correlation-id')).toBe(correlationId);
    expect(res.errors).toBeUndefined();
    const { session, user, userErrors } = res.data.register;
    expect(userErrors).toEqual([]);
    expect(user).toMatchObject({ email: 'ada@example.com', displayName: 'Ada', locale: 'en-GB' });
    expect(new Date(session.accessTokenExpiresAt).getTime()).toBeGreaterThan(Date.now());

    const me = await stack.gql(op.me, {}, { token: session.accessToken });
    expect(me.errors).toBeUndefined();
    expect(me.data.me).toMatchObject({ id: user.id, email: 'ada@example.com', avatarUrl: null, providers: [] });

    const event = await events.waitFor((e) => e.type === 'user.registered' && e.payload.userId === user.id);
    expect(event).toMatchObject({ serviceName: 'identity', version: 1, userId: user.id, payload: { email: 'ada@example.com', provider: 'local' } });
    // The id the client sent travels gateway -> subgraph -> outbox -> stream.
    expect(event.correlationId).toBe(correlationId);
  });

  it('logs in (user.login), rotates refresh tokens, and logs out', async () => {
    await register('grace@example.com');
    const login = await stack.gql(op.logIn, { input: { email: 'GRACE@example.com', password: 'correct horse battery' } });
    expect(login.data.logIn.userErrors).toEqual([]);
    const userId = login.data.logIn.user.id;
    await events.waitFor((e) => e.type === 'user.login' && e.userId === userId);

    const first = login.data.logIn.session.refreshToken;
    const refreshed = await stack.gql(op.refresh, { refreshToken: first });
    expect(refreshed.data.refreshSession.userErrors).toEqual([]);
    const second = refreshed.data.refreshSession.session.refreshToken;
    expect(second).not.toBe(first);
    const me = await stack.gql(op.me, {}, { token: refreshed.data.refreshSession.session.accessToken });
    expect(me.data.me.id).toBe(userId);

    expect((await stack.gql(op.logOut, { refreshToken: second })).data.logOut.ok).toBe(true);
    const after = await stack.gql(op.refresh, { refreshToken: second });
    expect(after.data.refreshSession.userErrors[0].code).toBe('INVALID_REFRESH_TOKEN');
  });

  it('updates the profile (user.updated) and deletes the account (user.deleted)', async () => {
    const { session, user } = (await register('linus@example.com')).data.register;
    const updated = await stack.gql(
      op.update,
      { input: { displayName: ' Linus ', avatarUrl: 'https://cdn.example.com/l.png', locale: 'fi' } },
      { token: session.accessToken },
    );
    expect(updated.data.updateProfile).toEqual({
      user: { id: user.id, displayName: 'Linus', avatarUrl: 'https://cdn.example.com/l.png', locale: 'fi' },
      userErrors: [],
    });
    const event = await events.waitFor((e) => e.type === 'user.updated' && e.userId === user.id);
    expect(event.payload.changes).toEqual({ displayName: 'Linus', avatarUrl: 'https://cdn.example.com/l.png', locale: 'fi' });

    const deleted = await stack.gql(op.delete, {}, { token: session.accessToken });
    expect(deleted.data.deleteAccount).toEqual({ deletedUserId: user.id, userErrors: [] });
    await events.waitFor((e) => e.type === 'user.deleted' && e.payload.userId === user.id);
    const me = await stack.gql(op.me, {}, { token: session.accessToken });
    expect(me.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    const again = await stack.gql(op.logIn, { input: { email: 'linus@example.com', password: 'correct horse battery' } });
    expect(again.data.logIn.userErrors[0].code).toBe('INVALID_CREDENTIALS');
    // The email is free again once every subgraph erased the account's data (test/deletion-saga.e2e.test.ts).
    await events.waitFor((e) => e.type === 'user.deletion.completed' && e.payload.userId === user.id);
    expect((await register('linus@example.com')).data.register.userErrors).toEqual([]);
  });

  it('makes an ADMIN_EMAILS account admin only once a provider vouched for its address', async () => {
    const rolesIn = (session: { accessToken: string }) => JSON.parse(Buffer.from(session.accessToken.split('.')[1]!, 'base64url').toString()).roles;
    // Whoever registers the address first with a password does not become admin…
    const { session } = (await register('boss@example.com')).data.register;
    expect(rolesIn(session)).toEqual(['USER']);
    expect((await stack.gql('{ me { role } }', {}, { token: session.accessToken })).data.me.role).toBe('USER');
    // …until the owner links a provider that vouches for it; the next sign-in carries ADMIN.
    const idToken = await google.signIdToken({ sub: 'g-boss', aud: 'google-client', email: 'boss@example.com', email_verified: true });
    const linked = await stack.gql(op.link, { input: { provider: 'GOOGLE', idToken } }, { token: session.accessToken });
    expect(linked.data.linkProvider.userErrors).toEqual([]);
    const again = await stack.gql(op.logIn, { input: { email: 'boss@example.com', password: 'correct horse battery' } });
    expect(rolesIn(again.data.logIn.session)).toEqual(['USER', 'ADMIN']);
    expect((await stack.gql('{ me { role } }', {}, { token: again.data.logIn.session.accessToken })).data.me.role).toBe('ADMIN');
  });
});

describe('sign-in providers through the gateway', () => {
  it('signs up with Google (user.registered + user.oauth.linked), then signs in again as the same user', async () => {
    const idToken = await google.signIdToken({ sub: 'g-1', aud: 'google-client', email: 'kat@gmail.com', email_verified: true, name: 'Kat' });
    const first = await stack.gql(op.signIn, { input: { provider: 'GOOGLE', idToken } });
    expect(first.data.signInWithProvider.userErrors).toEqual([]);
    const user = first.data.signInWithProvider.user;
    expect(user).toMatchObject({ email: 'kat@gmail.com', providers: [{ provider: 'GOOGLE' }] });
    const registered = await events.waitFor((e) => e.type === 'user.registered' && e.userId === user.id);
    expect(registered.payload.provider).toBe('google');
    await events.waitFor((e) => e.type === 'user.oauth.linked' && e.userId === user.id);

    const second = await stack.gql(op.signIn, { input: { provider: 'GOOGLE', idToken } });
    expect(second.data.signInWithProvider.user.id).toBe(user.id);
  });

  it('lets concurrent first sign-ins of one provider account end in one user', async () => {
    const idToken = await google.signIdToken({ sub: 'g-race', aud: 'google-client', email: 'race@gmail.com', email_verified: true });
    const results = await Promise.all([1, 2, 3].map(() => stack.gql(op.signIn, { input: { provider: 'GOOGLE', idToken } })));
    const outcomes = results.map((r) => r.data.signInWithProvider);
    expect(outcomes.map((o) => o.userErrors)).toEqual([[], [], []]);
    const ids = new Set(outcomes.map((o) => o.user.id));
    expect(ids.size).toBe(1);
    const registered = await events.waitFor((e) => e.type === 'user.registered' && e.payload.email === 'race@gmail.com');
    expect(events.received.filter((e) => e.type === 'user.registered' && e.payload.email === 'race@gmail.com')).toEqual([registered]);
    // Once settled, signing in again always works.
    expect((await stack.gql(op.signIn, { input: { provider: 'GOOGLE', idToken } })).data.signInWithProvider.user.id).toBe([...ids][0]);
  });

  it('signs up with Microsoft (tenant issuer) and with Facebook', async () => {
    const idToken = await microsoft.signIdToken({
      iss: `${microsoft.issuerUrl}/tenant-9/v2.0`, tid: 'tenant-9', sub: 'm-1', aud: 'ms-client', email: 'sam@contoso.com', xms_edov: true, name: 'Sam',
    });
    const ms = await stack.gql(op.signIn, { input: { provider: 'MICROSOFT', idToken } });
    expect(ms.data.signInWithProvider.userErrors).toEqual([]);
    expect(ms.data.signInWithProvider.user.providers).toEqual([{ provider: 'MICROSOFT', linkedAt: expect.any(String) }]);

    const accessToken = facebook.issueToken({ id: 'fb-7', name: 'Fay', email: 'fay@example.org' });
    const fb = await stack.gql(op.signIn, { input: { provider: 'FACEBOOK', accessToken } });
    expect(fb.data.signInWithProvider.userErrors).toEqual([]);
    expect(fb.data.signInWithProvider.user).toMatchObject({ email: 'fay@example.org', providers: [{ provider: 'FACEBOOK' }] });
  });

  it('links a provider to the signed-in account, once', async () => {
    const { session, user } = (await register('mo@example.com')).data.register;
    const idToken = await google.signIdToken({ sub: 'g-mo', aud: 'google-client', email: 'mo.other@gmail.com', email_verified: true });
    const linked = await stack.gql(op.link, { input: { provider: 'GOOGLE', idToken } }, { token: session.accessToken });
    expect(linked.data.linkProvider).toEqual({ user: { id: user.id, providers: [{ provider: 'GOOGLE', linkedAt: expect.any(String) }] }, userErrors: [] });
    await events.waitFor((e) => e.type === 'user.oauth.linked' && e.userId === user.id);

    const twice = await stack.gql(op.link, { input: { provider: 'GOOGLE', idToken } }, { token: session.accessToken });
    expect(twice.data.linkProvider.userErrors[0].code).toBe('PROVIDER_ALREADY_LINKED');
    // Signing in with the linked Google account now reaches the same user.
    const signIn = await stack.gql(op.signIn, { input: { provider: 'GOOGLE', idToken } });
    expect(signIn.data.signInWithProvider.user.id).toBe(user.id);
  });
});

describe('health', () => {
  it('reports the gateway and each subgraph (with its database) healthy', async () => {
    const gateway = await fetch(stack.app.gatewayUrl.replace(/\/graphql$/, '/health'));
    expect(await gateway.json()).toEqual({ status: 'ok', component: 'gateway' });
    for (const subgraph of stack.app.subgraphs) {
      const res = await fetch(`${subgraph.url}/health`);
      expect([res.status, await res.json()]).toEqual([200, { status: 'ok', subgraph: subgraph.name }]);
    }
  });
});

describe('the schema explorer', () => {
  it('can introspect the gateway', async () => {
    const res = await stack.gql('{ __schema { queryType { name } mutationType { fields { name } } } }');
    expect(res.data.__schema.queryType.name).toBe('Query');
    expect(res.data.__schema.mutationType.fields.map((f: { name: string }) => f.name)).toContain('register');
  });
});

describe('User as a federated entity', () => {
  /** What the gateway sends when another subgraph's field (a story's author) needs users. */
  const entities = async (caller: Caller, ids: string[], selection = 'id displayName email') => {
    const identity = stack.app.subgraphs.find((s) => s.name === 'identity')!;
    const operation = {
      query: `query ($r: [_Any!]!) { _entities(representations: $r) { ... on User { ${selection} } } }`,
      variables: { r: ids.map((id) => ({ __typename: 'User', id })) },
    };
    const signed = signCaller(stack.config.INTERNAL_SECRET, { audience: 'identity', caller, correlationId: randomUUID(), operation });
    const res = await fetch(`${identity.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...signed },
      body: JSON.stringify(operation),
    });
    return (await res.json()) as { data: { _entities: ({ id: string; displayName: string; email: string | null; providers?: unknown[] } | null)[] }; errors?: any[] };
  };

  it('resolves references in order, null for unknown ids, and shows emails only to their owner and admins', async () => {
    const a = (await register('ref-a@example.com', 'correct horse battery', 'Ref A')).data.register.user;
    const b = (await register('ref-b@example.com', 'correct horse battery', 'Ref B')).data.register.user;
    const unknown = randomUUID();

    const asA = await entities({ userId: a.id, roles: ['USER'] }, [b.id, unknown, a.id]);
    expect(asA.data._entities.map((u) => u?.displayName ?? null)).toEqual(['Ref B', null, 'Ref A']);
    expect(asA.data._entities.map((u) => u?.email ?? null)).toEqual([null, null, 'ref-a@example.com']);
    expect(asA.errors).toBeUndefined();

    const asAdmin = await entities({ userId: randomUUID(), roles: ['USER', 'ADMIN'] }, [a.id]);
    expect(asAdmin.data._entities[0]!.email).toBe('ref-a@example.com');
  });

  it('batches: many references cost one query per table, not one per user', async () => {
    const ids = [];
    for (const n of [1, 2, 3, 4]) ids.push((await register(`batch-${n}@example.com`)).data.register.user.id);
    const knex = stack.app.subgraphs.find((s) => s.name === 'identity')!.orm.em.getConnection().getKnex();
    const tables: string[] = [];
    const onQuery = (q: { sql: string }) => {
      // Only the tables this resolution reads (the outbox relay's sweep may query meanwhile).
      const table = /from "identity"\."(user|provider_link)"/.exec(q.sql)?.[1];
      if (table) tables.push(table);
    };
    knex.on('query', onQuery);
    try {
      const res = await entities({ userId: randomUUID(), roles: ['USER', 'ADMIN'] }, ids, 'id displayName providers { provider }');
      expect(res.data._entities.map((u) => u?.providers)).toEqual([[], [], [], []]);
    } finally {
      knex.off('query', onQuery);
    }
    expect(tables.sort()).toEqual(['provider_link', 'user']);
  });
});

describe('the event catalog', () => {
  it('lists every event identity publishes (and the steps of its deletion saga report), with exactly its payload fields', async () => {
    const catalog = JSON.parse(readFileSync(new URL('../schema/events/catalog.json', import.meta.url), 'utf8'));
    // One account through its whole life publishes every type (other tests add more of the same).
    const { session } = (await register('catalog@example.com')).data.register;
    await stack.gql(op.logIn, { input: { email: 'catalog@example.com', password: 'correct horse battery' } });
    await stack.gql(op.update, { input: { displayName: 'Cat' } }, { token: session.accessToken });
    const idToken = await google.signIdToken({ sub: 'g-catalog', aud: 'google-client', email: 'cat@gmail.com', email_verified: true });
    await stack.gql(op.link, { input: { provider: 'GOOGLE', idToken } }, { token: session.accessToken });
    const { deletedUserId } = (await stack.gql(op.delete, {}, { token: session.accessToken })).data.deleteAccount;
    await events.waitFor((e) => e.type === 'user.deletion.completed' && e.userId === deletedUserId);
    const types = new Set(events.received.map((e) => e.type));
    // (user.erasure.requested only when a step is late: test/deletion-saga.e2e.test.ts.)
    expect([...types].sort()).toEqual(['user.deleted', 'user.deletion.completed', 'user.erasure.completed', 'user.login', 'user.oauth.linked', 'user.registered', 'user.updated']);
    for (const event of events.received) {
      expect(Object.keys(event.payload).sort(), event.type).toEqual(Object.keys(catalog[event.type].payload).sort());
      expect(event.version).toBe(catalog[event.type].version);
    }
  });
});
