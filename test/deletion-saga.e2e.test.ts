import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { EventConsumer } from '../platform/events/consumer.js';
import { signCaller } from '../platform/internal-auth.js';
import { LocalSpeechSynthesizer } from '../subgraphs/narration/providers/local-speech.js';
import { startFakeOidcIssuer, type FakeOidcIssuer } from './fakes/oidc-issuer.js';
import { captureEvents } from './support/capture.js';
import { clientOperation } from './support/clients.js';
import { startTestStack, type TestStack } from './support/stack.js';
import { filesUnder } from '../platform/erasure/erasure-step.contract.js';

/**
 * The user deletion saga through the gateway: deleteAccount, every step's subgraph erasing and
 * reporting, identity asking a late step again, and the account gone for good at the end; the
 * voice, narrations and videos of the account gone with their files.
 */
const op = {
  register: clientOperation('Register'),
  logIn: clientOperation('LogIn'),
  refresh: clientOperation('RefreshSession'),
  signIn: clientOperation('SignInWithProvider'),
  link: clientOperation('LinkProvider'),
  createStory: clientOperation('CreateStory'),
  delete: clientOperation('DeleteAccount'),
  createUpload: clientOperation('CreateVoiceSampleUpload'),
  clone: clientOperation('CloneVoice'),
  narrate: clientOperation('NarrateStory'),
  narrationJob: clientOperation('NarrationJob'),
  generateVideo: clientOperation('GenerateVideo'),
  videoJob: clientOperation('VideoJob'),
};
const USER_DELETION = `query ($userId: ID!) {
  userDeletion(userId: $userId) { userId status requestedAt completedAt steps { service status attempts requestedAt at } }
}`;
const STEPS = ['audit', 'billing', 'collaboration', 'narration', 'notification', 'story', 'video'];
const PASSWORD = 'correct horse battery';
/** Short, so a late step is asked again within the test. */
const RETRY_MS = 300;

let stack: TestStack;
let google: FakeOidcIssuer;
let db: pg.Client;
let events: Awaited<ReturnType<typeof captureEvents>>;
let adminToken: string;
/** Where narration and video keep their files (`<dir>/narration/…`, `<dir>/video/…`). */
let storageDir: string;

beforeAll(async () => {
  google = await startFakeOidcIssuer();
  storageDir = await mkdtemp(join(tmpdir(), 'deletion-saga-'));
  stack = await startTestStack({
    env: {
      STORAGE_DIR: storageDir,
      LOCAL_VIDEO_POLL_INTERVAL_MS: '50',
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
  if (storageDir) await rm(storageDir, { recursive: true, force: true });
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
  const operation = { query: `query ($r: [_Any!]!) { _entities(representations: $r) { ... on User { id displayName email } } }`, variables: { r: [{ __typename: 'User', id }] } };
  const signed = signCaller(stack.config.INTERNAL_SECRET, { audience: 'identity', caller: { userId: randomUUID(), roles: ['USER'] }, correlationId: randomUUID(), operation });
  const res = await fetch(`${identity.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...signed }, body: JSON.stringify(operation) });
  return ((await res.json()) as { data: { _entities: unknown[] } }).data._entities[0];
}

const identityRow = (userId: string) => query(`select deletion_requested_at is not null as deleting from identity."user" where id = $1`, [userId]);
const consumerOf = (subgraph: string, name: string): EventConsumer => stack.app.subgraphs.find((s) => s.name === subgraph)!.consumers.find((c) => c.name === name)!;

/** Files a subgraph's store holds under `prefix` (paths relative to the subgraph's folder). */

/** A member with data (above), and media: five samples uploaded through their links, the voice cloned, a story read aloud in it and made into a video. */
async function memberWithMedia(name: string) {
  const member = await memberWithData(name);
  const { token } = member;
  for (const label of ['joy', 'anger', 'whisper', 'laugh', 'sigh']) {
    const created = (await stack.gql(op.createUpload, { input: { kind: 'EMOTION', label, contentType: 'audio/wav' } }, { token })).data.createVoiceSampleUpload;
    expect(created.userErrors).toEqual([]);
    const audio = (await new LocalSpeechSynthesizer().synthesize(`${name} says ${label}.`, { kind: 'STOCK', stockVoice: 'alloy' })).audio;
    expect((await fetch(created.uploadUrl, { method: 'PUT', headers: { 'content-type': 'audio/wav' }, body: audio })).status).toBe(201);
  }
  expect((await stack.gql(op.clone, {}, { token })).data.cloneVoice).toEqual({ voice: { status: 'CLONED' }, userErrors: [] });
  const story = (await stack.gql(op.createStory, { input: { title: `${name} aloud`, content: 'The keeper lit the lamp, and the ships came home.' } }, { token })).data.createStory;
  expect(story.userErrors).toEqual([]);
  const narrated = (await stack.gql(op.narrate, { input: { storyId: story.story.id, voice: 'CLONED' } }, { token })).data.narrateStory;
  expect(narrated.userErrors).toEqual([]);
  await eventually(async () => expect((await stack.gql(op.narrationJob, { id: narrated.job.id }, { token })).data.narrationJob.status).toBe('COMPLETED'));
  const video = (await stack.gql(op.generateVideo, { input: { storyId: story.story.id } }, { token })).data.generateVideo;
  expect(video.userErrors).toEqual([]);
  await eventually(async () => expect((await stack.gql(op.videoJob, { id: video.job.id }, { token })).data.videoJob.status).toBe('COMPLETED'));
  return { ...member, narrationId: narrated.job.id as string, videoId: video.job.id as string };
}

/** The rows and files narration and video hold of a member with media. */
async function mediaOf(member: { id: string; narrationId: string; videoId: string }) {
  const count = async (table: string) => (await query<{ n: number }>(`select count(*)::int as n from ${table} where user_id = $1`, [member.id]))[0]!.n;
  return {
    rows: { voices: await count('narration.voice'), samples: await count('narration.voice_sample'), narrations: await count('narration.narration_job'), videos: await count('video.video_job') },
    files: [
      ...(await filesUnder(join(storageDir, 'narration'), `voice-samples/${member.id}`)),
      ...(await filesUnder(join(storageDir, 'narration'), `narrations/${member.narrationId}`)),
      ...(await filesUnder(join(storageDir, 'video'), `videos/${member.videoId}`)),
    ],
  };
}

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
      // Other subgraphs still refer to her until their steps are done: a former user, nothing private.
      expect(await userReference(dora.id)).toEqual({ id: dora.id, displayName: 'Former user', email: null });
      expect(await identityRow(dora.id)).toEqual([{ deleting: true }]);

      // The other steps report; collaboration's stays PENDING, and is asked again and again.
      const waiting = await eventually(async () => {
        const res = await deletionOf(dora.id);
        expect(res.errors).toBeUndefined();
        const saga = res.data.userDeletion;
        expect(saga).toMatchObject({ userId: dora.id, status: 'IN_PROGRESS', completedAt: null });
        expect(saga.steps.map((s: { service: string; status: string }) => [s.service, s.status])).toEqual([
          ['audit', 'DONE'],
          ['billing', 'DONE'],
          ['collaboration', 'PENDING'],
          ['narration', 'DONE'],
          ['notification', 'DONE'],
          ['story', 'DONE'],
          ['video', 'DONE'],
        ]);
        expect(saga.steps[2]).toMatchObject({ at: null, attempts: expect.any(Number) });
        expect(saga.steps[2].attempts).toBeGreaterThanOrEqual(3);
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
      expect(done.steps[2].attempts).toBeGreaterThanOrEqual(waiting.steps[2].attempts);
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

  it('erases the voice, samples, narrations and videos of the account, files included; another member keeps theirs', async () => {
    const gil = await memberWithMedia('Gil');
    const hana = await memberWithMedia('Hana');
    const gils = await mediaOf(gil);
    expect(gils.rows).toEqual({ voices: 1, samples: 5, narrations: 1, videos: 1 });
    // The samples' audio, the narration's and the video's, each with its sidecar.
    expect(gils.files.length).toBeGreaterThanOrEqual(7);
    const hanas = await mediaOf(hana);

    expect((await stack.gql(op.delete, {}, { token: gil.token })).data.deleteAccount).toEqual({ deletedUserId: gil.id, userErrors: [] });
    const done = await eventually(async () => {
      const saga = (await deletionOf(gil.id)).data.userDeletion;
      expect(saga.status).toBe('COMPLETED');
      return saga;
    });
    expect(done.steps.map((s: { service: string; status: string }) => [s.service, s.status])).toEqual(STEPS.map((s) => [s, 'DONE']));
    for (const service of ['narration', 'video']) {
      const report = events.received.find((e) => e.type === 'user.erasure.completed' && e.userId === gil.id && e.payload.service === service);
      expect(report, service).toMatchObject({ serviceName: service, payload: { userId: gil.id, service } });
    }
    // The rows went with the reports; the files follow within a sweep.
    expect((await mediaOf(gil)).rows).toEqual({ voices: 0, samples: 0, narrations: 0, videos: 0 });
    await eventually(async () => expect((await mediaOf(gil)).files).toEqual([]));
    await eventually(async () => expect(await query(`select kind from narration.erasure_cleanup where user_id = $1 union all select kind from video.erasure_cleanup where user_id = $1`, [gil.id])).toEqual([]));
    expect(await mediaOf(hana)).toEqual(hanas);
    // An access token still valid creates nothing more.
    const late = await stack.gql(op.createUpload, { input: { kind: 'SOUND', label: 'late', contentType: 'audio/wav' } }, { token: gil.token });
    expect(late.errors?.[0]).toMatchObject({ message: 'This account has been deleted', extensions: { code: 'UNAUTHENTICATED' } });
    expect((await mediaOf(gil)).rows.samples).toBe(0);
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
