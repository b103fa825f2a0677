import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { EventConsumer } from '../platform/events/consumer.js';
import { signCaller } from '../platform/internal-auth.js';
import { startFakeOidcIssuer, type FakeOidcIssuer } from './fakes/oidc-issuer.js';
import { captureEvents } from './support/capture.js';
import { clientOperation } from './support/clients.js';
import { startTestStack, type TestStack } from './support/stack.js';

/**
 * The user deletion saga through the gateway: deleteAccount, every step's subgraph erasing and
 * reporting, identity asking a late step again, and the account gone for good at the end.
 */
const op = {
  register: clientOperation('Register'),
  logIn: clientOperation('LogIn'),
  refresh: clientOperation('RefreshSession'),
  signIn: clientOperation('SignInWithProvider'),
  link: clientOperation('LinkProvider'),
  createStory: clientOperation('CreateStory'),
  delete: clientOperation('DeleteAccount'),
};
const USER_DELETION = `query ($userId: ID!) {
  userDeletion(userId: $userId) { userId status requestedAt completedAt steps { service status attempts requestedAt at } }
}`;
const STEPS = ['billing', 'collaboration', 'notification', 'story'];
const PASSWORD = 'correct horse battery';
/** Short, so a late step is asked again within the test. */
const RETRY_MS = 300;

let stack: TestStack;
let google: FakeOidcIssuer;
let db: pg.Client;
let events: Awaited<ReturnType<typeof captureEvents>>;
let adminToken: string;

beforeAll(async () => {
  google = await startFakeOidcIssuer();
  stack = await startTestStack({
    env: {
      ADMIN_EMAILS: 'admin@example.com',
      GOOGLE_CLIENT_ID: 'google-client',
      GOOGLE_JWKS_URL: google.jwksUrl,
      GOOGLE_ISSUER: google.issuerUrl,
      IDENTITY_DELETION_RETRY_MS: String(RETRY_MS),
    },
  });
  db = new pg.Client({ connectionString: stack.databaseUrl });
  await db.connect();
  events = await captureEvents(stack.transport, ['user.>']);
  // An ADMIN_EMAILS address is admin once a provider vouched for it.
  const idToken = await google.signIdToken({ sub: 'g-admin', aud: 'google-client', email: 'admin@example.com', email_verified: true, name: 'Admin' });
  const signedIn = await stack.gql(op.signIn, { input: { provider: 'GOOGLE', idToken } });
  expect(signedIn.data.signInWithProvider.userErrors).toEqual([]);
  adminToken = signedIn.data.signInWithProvider.session.accessToken;
});

afterAll(async () => {
  await events?.stop();
  await db?.end();
  await stack?.close();
  await google?.stop();
});

const query = async <T = Record<string, any>>(sql: string, params: unknown[]) => (await db.query(sql, params)).rows as T[];
const eventually = <T>(check: () => Promise<T>) => vi.waitFor(check, { timeout: 15_000, interval: 50 });
const deletionOf = async (userId: string, token = adminToken) => stack.gql(USER_DELETION, { userId }, { token });

/** A member with a story, a membership and a place in notification's directory, all settled. */
async function memberWithData(name: string) {
  const email = `${name.toLowerCase()}-${randomUUID().slice(0, 8)}@example.com`;
  const registered = (await stack.gql(op.register, { input: { email, password: PASSWORD, displayName: name } })).data.register;
  expect(registered.userErrors).toEqual([]);
  const { user, session } = registered;
  const story = await stack.gql(op.createStory, { input: { title: `${name}'s tale`, content: 'Once upon a time there was a lighthouse.' } }, { token: session.accessToken });
  expect(story.data.createStory.userErrors).toEqual([]);
  await eventually(async () => {
    expect(await query(`select status from billing.membership where user_id = $1`, [user.id])).toEqual([{ status: 'ACTIVE' }]);
    expect(await query(`select email from notification.recipient where user_id = $1`, [user.id])).toEqual([{ email }]);
  });
  return { id: user.id as string, email, token: session.accessToken as string, refreshToken: session.refreshToken as string };
}

/** What the gateway asks identity when another subgraph's field needs the user (a reference). */
async function userReference(id: string) {
  const identity = stack.app.subgraphs.find((s) => s.name === 'identity')!;
  const operation = { query: `query ($r: [_Any!]!) { _entities(representations: $r) { ... on User { id } } }`, variables: { r: [{ __typename: 'User', id }] } };
  const signed = signCaller(stack.config.INTERNAL_SECRET, { audience: 'identity', caller: { userId: randomUUID(), roles: ['USER'] }, correlationId: randomUUID(), operation });
  const res = await fetch(`${identity.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...signed }, body: JSON.stringify(operation) });
  return ((await res.json()) as { data: { _entities: unknown[] } }).data._entities[0];
}

const identityRow = (userId: string) => query(`select deletion_requested_at is not null as deleting from identity."user" where id = $1`, [userId]);
const consumerOf = (subgraph: string, name: string): EventConsumer => stack.app.subgraphs.find((s) => s.name === subgraph)!.consumers.find((c) => c.name === name)!;

describe('the user deletion saga', () => {
  it('waits for a late step, asks it again, and deletes the account for good once every step is done', async () => {
    const dora = await memberWithData('Dora');
    const googleToken = await google.signIdToken({ sub: 'g-dora', aud: 'google-client', email: 'dora@gmail.com', email_verified: true, name: 'Dora' });
    expect((await stack.gql(op.link, { input: { provider: 'GOOGLE', idToken: googleToken } }, { token: dora.token })).data.linkProvider.userErrors).toEqual([]);
    // Collaboration is down: its consumer takes nothing until it is back.
    const collaboration = consumerOf('collaboration', 'collaboration');
    await collaboration.stop();
    let restarted = false;
    try {
      const correlationId = `test-${randomUUID()}`;
      const deleted = await stack.gql(op.delete, {}, { token: dora.token, headers: { 'x-correlation-id': correlationId } });
      expect(deleted.data.deleteAccount).toEqual({ deletedUserId: dora.id, userErrors: [] });

      // From now on the account behaves as deleted, though its row is still there.
      expect((await stack.gql('{ me { id } }', {}, { token: dora.token })).errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
      expect((await stack.gql(op.logIn, { input: { email: dora.email, password: PASSWORD } })).data.logIn.userErrors[0].code).toBe('INVALID_CREDENTIALS');
      expect((await stack.gql(op.refresh, { refreshToken: dora.refreshToken })).data.refreshSession.userErrors[0].code).toBe('INVALID_REFRESH_TOKEN');
      const again = await stack.gql(op.register, { input: { email: dora.email, password: PASSWORD, displayName: 'Dora again' } });
      expect(again.errors).toBeUndefined();
      expect(again.data.register.userErrors).toEqual([{ code: 'ACCOUNT_BEING_DELETED', field: 'email', message: expect.any(String) }]);
      const viaGoogle = await stack.gql(op.signIn, { input: { provider: 'GOOGLE', idToken: googleToken } });
      expect(viaGoogle.data.signInWithProvider.userErrors).toEqual([{ code: 'ACCOUNT_BEING_DELETED', field: 'provider', message: expect.any(String) }]);
      expect(await userReference(dora.id)).toBeNull();
      expect(await identityRow(dora.id)).toEqual([{ deleting: true }]);

      // The other steps report; collaboration's stays PENDING, and is asked again and again.
      const waiting = await eventually(async () => {
        const res = await deletionOf(dora.id);
        expect(res.errors).toBeUndefined();
        const saga = res.data.userDeletion;
        expect(saga).toMatchObject({ userId: dora.id, status: 'IN_PROGRESS', completedAt: null });
        expect(saga.steps.map((s: { service: string; status: string }) => [s.service, s.status])).toEqual([
          ['billing', 'DONE'],
          ['collaboration', 'PENDING'],
          ['notification', 'DONE'],
          ['story', 'DONE'],
        ]);
        expect(saga.steps[1]).toMatchObject({ at: null, attempts: expect.any(Number) });
        expect(saga.steps[1].attempts).toBeGreaterThanOrEqual(3);
        return saga;
      });
      // The stream may be a moment behind the saga's rows.
      await events.waitFor((e) => e.type === 'user.erasure.requested' && e.payload.userId === dora.id && e.payload.attempt === 3);
      const asked = events.received.filter((e) => e.type === 'user.erasure.requested' && e.payload.userId === dora.id);
      expect(asked.length).toBeGreaterThanOrEqual(2);
      for (const request of asked) {
        expect(request.payload.services).toContain('collaboration');
        expect(request.payload.requestedAt).toBe(waiting.requestedAt);
      }
      // One event per attempt, each with an id of its own (an inbox must not take one for another).
      expect(new Set(asked.map((e) => e.id)).size).toBe(asked.length);
      expect(asked.map((e) => e.payload.attempt)).toEqual(asked.map((_, i) => i + 2));
      // The steps that reported have erased already; the account waits for the last one.
      expect(await query(`select distinct status from story.story where author_id = $1`, [dora.id])).toEqual([{ status: 'ARCHIVED' }]);
      expect(await query(`select status from billing.membership where user_id = $1`, [dora.id])).toEqual([{ status: 'CANCELLED' }]);
      expect(await query(`select email, display_name, deleted_at is not null as gone from notification.recipient where user_id = $1`, [dora.id])).toEqual([
        { email: null, display_name: 'Former user', gone: true },
      ]);
      expect(await identityRow(dora.id)).toEqual([{ deleting: true }]);
      expect(events.received.some((e) => e.type === 'user.deletion.completed' && e.userId === dora.id)).toBe(false);

      // Collaboration is back: it takes user.deleted and every request since, and reports (more than once).
      await collaboration.start();
      restarted = true;
      const done = await eventually(async () => {
        const saga = (await deletionOf(dora.id)).data.userDeletion;
        expect(saga.status).toBe('COMPLETED');
        return saga;
      });
      expect(done.steps.map((s: { service: string }) => s.service)).toEqual(STEPS);
      for (const step of done.steps) expect(step).toMatchObject({ status: 'DONE', at: expect.any(String) });
      expect(done.steps[1].attempts).toBeGreaterThanOrEqual(waiting.steps[1].attempts);
      expect(new Date(done.completedAt).getTime()).toBeGreaterThanOrEqual(new Date(done.requestedAt).getTime());
      const completed = await events.waitFor((e) => e.type === 'user.deletion.completed' && e.userId === dora.id);
      // The saga reads as one story in the event log: every event of it carries the request's correlation id.
      expect(completed).toMatchObject({ serviceName: 'identity', payload: { userId: dora.id }, correlationId });
      expect(asked.map((e) => e.correlationId)).toEqual(asked.map(() => correlationId));
      expect(await identityRow(dora.id)).toEqual([]);

      // The duplicate reports (collaboration answered user.deleted and each request) changed nothing.
      await eventually(async () => {
        const reports = events.received.filter((e) => e.type === 'user.erasure.completed' && e.userId === dora.id && e.payload.service === 'collaboration');
        expect(reports.length).toBeGreaterThanOrEqual(2);
      });
      expect(events.received.filter((e) => e.type === 'user.deletion.completed' && e.userId === dora.id)).toHaveLength(1);
      expect((await deletionOf(dora.id)).data.userDeletion).toEqual(done);
      // The address is free again, and the Google account (its link gone with the row) signs up anew.
      expect((await stack.gql(op.register, { input: { email: dora.email, password: PASSWORD, displayName: 'Dora' } })).data.register.userErrors).toEqual([]);
      const anew = (await stack.gql(op.signIn, { input: { provider: 'GOOGLE', idToken: googleToken } })).data.signInWithProvider;
      expect(anew.userErrors).toEqual([]);
      expect(anew.user.id).not.toBe(dora.id);
    } finally {
      if (!restarted) await collaboration.start();
    }
  });

  it('completes with every step reporting on its own, each from its subgraph', async () => {
    const eli = await memberWithData('Eli');
    expect((await stack.gql(op.delete, {}, { token: eli.token })).data.deleteAccount).toEqual({ deletedUserId: eli.id, userErrors: [] });
    const done = await eventually(async () => {
      const saga = (await deletionOf(eli.id)).data.userDeletion;
      expect(saga.status).toBe('COMPLETED');
      return saga;
    });
    expect(done.steps.map((s: { service: string; status: string }) => [s.service, s.status])).toEqual(STEPS.map((s) => [s, 'DONE']));
    expect(await identityRow(eli.id)).toEqual([]);
    const reports = events.received.filter((e) => e.type === 'user.erasure.completed' && e.userId === eli.id);
    expect(new Set(reports.map((e) => `${e.serviceName}:${e.payload.service}`))).toEqual(new Set(STEPS.map((s) => `${s}:${s}`)));
    expect(await query(`select distinct status from story.story where author_id = $1`, [eli.id])).toEqual([{ status: 'ARCHIVED' }]);
    expect(await query(`select status from billing.membership where user_id = $1`, [eli.id])).toEqual([{ status: 'CANCELLED' }]);
  });

  it('shows deletions to admins alone', async () => {
    const fay = await memberWithData('Fay');
    const forbidden = await deletionOf(fay.id, fay.token);
    expect(forbidden.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(forbidden.data?.userDeletion ?? null).toBeNull();
    const anonymous = await stack.gql(USER_DELETION, { userId: fay.id });
    expect(anonymous.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    // An account nobody is deleting, and an id that is no user's.
    expect((await deletionOf(fay.id)).data).toEqual({ userDeletion: null });
    expect((await deletionOf(randomUUID())).data).toEqual({ userDeletion: null });
    expect((await deletionOf('nope')).errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('lists the saga events in the catalog, with exactly their payload fields', async () => {
    const catalog = JSON.parse(readFileSync(new URL('../schema/events/catalog.json', import.meta.url), 'utf8'));
    // The tests above published each type.
    for (const type of ['user.erasure.requested', 'user.erasure.completed', 'user.deletion.completed']) {
      const published = events.received.filter((e) => e.type === type);
      expect(published.length, type).toBeGreaterThan(0);
      for (const event of published) {
        expect(Object.keys(event.payload).sort(), type).toEqual(Object.keys(catalog[type].payload).sort());
        expect(event.version).toBe(catalog[type].version);
        expect(catalog[type].publisher).toContain(event.serviceName);
      }
    }
  });
});
