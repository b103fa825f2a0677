import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Client } from 'graphql-ws';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startFalFake } from './fakes/fal.js';
import { startLumaFake } from './fakes/luma.js';
import { startRunwayFake } from './fakes/runway.js';
import type { VideoFake } from './fakes/video-fake.js';
import { captureEvents } from './support/capture.js';
import { clientOperation } from './support/clients.js';
import { analysedStory, registerMember } from './support/people.js';
import { startTestStack, type TestStack } from './support/stack.js';
import { follow as followSubscription, wsClients } from './support/subscriptions.js';

/**
 * Video through the gateway with the client operations of ../shared/clients/media.graphql:
 * Runway, Pika (fal.ai) and Luma through their SDKs against fakes that speak their wire
 * formats, falling back in that order. The local renderer has its own file (video-local.e2e).
 */
const op = {
  createStory: clientOperation('CreateStory'),
  publish: clientOperation('PublishStory'),
  changePlan: clientOperation('ChangePlan'),
  generate: clientOperation('GenerateVideo'),
  job: clientOperation('VideoJob'),
  progress: clientOperation('VideoProgress'),
};

const PIKA_TIMEOUT_MS = 1500;
let stack: TestStack;
let runway: VideoFake;
let pika: VideoFake;
let luma: VideoFake;
let events: Awaited<ReturnType<typeof captureEvents>>;
let db: pg.Client;
const ws = wsClients(() => stack.app.gatewayUrl);
const wsClient = ws.client;
/** A job's deliveries over graphql-ws, and the statuses they went through. */
function follow(client: Client, jobId: string) {
  const followed = followSubscription(client, op.progress, { jobId });
  return { ...followed, states: () => followed.received.map((r) => r.data?.videoJobUpdated?.status as string) };
}

beforeAll(async () => {
  [runway, pika, luma] = await Promise.all([startRunwayFake(), startFalFake(), startLumaFake()]);
  stack = await startTestStack({
    env: {
      VIDEO_PROVIDERS: 'runway,pika,luma',
      RUNWAY_API_KEY: 'test-runway-key',
      RUNWAY_BASE_URL: runway.url,
      RUNWAY_POLL_INTERVAL_MS: '20',
      FAL_KEY: 'test-fal-key',
      FAL_QUEUE_URL: pika.url,
      PIKA_POLL_INTERVAL_MS: '20',
      PIKA_TASK_TIMEOUT_MS: String(PIKA_TIMEOUT_MS),
      LUMA_API_KEY: 'test-luma-key',
      LUMA_BASE_URL: luma.url,
      LUMA_POLL_INTERVAL_MS: '20',
      VIDEO_MAX_RETRIES: '0',
      VIDEO_REQUEST_TIMEOUT_MS: '5000',
      VIDEO_CONCURRENCY: '1',
    },
  });
  events = await captureEvents(stack.transport, ['video.>', 'usage.>']);
  db = new pg.Client({ connectionString: stack.databaseUrl });
  await db.connect();
});

afterAll(async () => {
  await ws.disposeAll();
  await db?.end();
  await events?.stop();
  await stack?.close();
  await Promise.all([runway?.close(), pika?.close(), luma?.close()]);
});

async function generate(token: string, input: Record<string, unknown>) {
  const res = await stack.gql(op.generate, { input }, { token });
  expect(res.errors).toBeUndefined();
  return res.data.generateVideo;
}



const videoJob = async (id: string, token: string) => (await stack.gql(op.job, { id }, { token })).data.videoJob;
const usage = async (token: string) => (await stack.gql(`{ me { membership { usage { videosGenerated storiesCreated } } } }`, {}, { token })).data.me.membership.usage as { videosGenerated: number; storiesCreated: number };

/**
 * The member's usage once billing has counted every event published so far: a story created
 * now reaches billing's usage consumer after them (one consumer, stream order), so once it is
 * counted, so is any video charge before it, and a missing or second charge shows.
 */
async function settledUsage(token: string) {
  const before = (await usage(token)).storiesCreated;
  expect((await stack.gql(op.createStory, { input: { title: 'Marker', content: 'Counted after the video.' } }, { token })).data.createStory.userErrors).toEqual([]);
  await vi.waitFor(async () => expect((await usage(token)).storiesCreated).toBe(before + 1), { timeout: 10_000, interval: 50 });
  return usage(token);
}
const eventsOf = (jobId: string) => events.received.filter((e) => e.payload?.jobId === jobId).map((e) => e.type);

describe('a video with live progress', () => {
  it('goes from QUEUED to COMPLETED on Runway through graphql-ws, with its attempts and story title, and is charged once', async () => {
    const ada = await registerMember(stack, 'Ada');
    const storyId = await analysedStory(stack, ada.token, 'The Lighthouse');
    // The one worker slot is taken by another member's job, hung at Runway, so Ada's stays QUEUED
    // while she subscribes.
    runway.behave({ kind: 'hang' });
    const blocker = await registerMember(stack, 'Blocker');
    await generate(blocker.token, { storyId: await analysedStory(stack, blocker.token, 'Blocking') });
    await vi.waitFor(() => expect(runway.tasks.at(-1)?.prompt).toContain('Blocking'), { timeout: 10_000, interval: 20 });
    const blocking = runway.tasks.at(-1)!;
    runway.behave({ kind: 'succeed', polls: 4 });
    const created = await generate(ada.token, { storyId, style: 'watercolor' });
    expect(created.userErrors).toEqual([]);
    expect(created.job).toMatchObject({ status: 'QUEUED' });
    const followed = follow(wsClient(ada.token), created.job.id);
    await vi.waitFor(() => expect(followed.states()).toEqual(['QUEUED']), { timeout: 10_000, interval: 20 });
    // Runway gives up on the blocker (it falls back to Pika and is done), and Ada's job starts.
    blocking.behaviour = { kind: 'fail' };
    await followed.done;
    expect(followed.error()).toBeNull();
    const states = followed.states();
    expect(states[0]).toBe('QUEUED');
    expect(states).toContain('RUNNING');
    expect(states.at(-1)).toBe('COMPLETED');
    const progress = followed.received.map((r) => r.data.videoJobUpdated.progress as number);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    const last = followed.received.at(-1).data.videoJobUpdated;
    expect(last).toMatchObject({
      id: created.job.id,
      status: 'COMPLETED',
      progress: 1,
      provider: 'RUNWAY',
      error: null,
      attempts: [{ provider: 'RUNWAY', status: 'SUCCEEDED', error: null }],
      story: { id: storyId, title: 'The Lighthouse' },
    });
    // The prompt Runway got was made from the analysis and the style.
    expect(runway.tasks.find((t) => t.prompt.includes('The Lighthouse'))!.prompt).toMatch(/The Lighthouse.*Mira.*watercolor/s);
    // The video is ours now: a signed link through the gateway, not the provider's.
    expect(new URL(last.videoUrl).origin).toBe(new URL(stack.app.gatewayUrl).origin);
    const video = await fetch(last.videoUrl);
    expect(video.status).toBe(200);
    expect(video.headers.get('content-type')).toBe('video/mp4');
    const bytes = Buffer.from(await video.arrayBuffer());
    expect(bytes.subarray(4, 8).toString('latin1')).toBe('ftyp');
    const tampered = new URL(last.videoUrl);
    tampered.searchParams.set('expires', String(Number(tampered.searchParams.get('expires') ?? 0) + 1000));
    expect((await fetch(tampered)).status).toBe(403);

    await events.waitFor((e) => e.type === 'video.generation.completed' && e.payload.jobId === created.job.id);
    expect(eventsOf(created.job.id)).toEqual(['video.generation.started', 'video.generation.completed']);
    expect((await settledUsage(ada.token)).videosGenerated).toBe(1);
    const fetched = await videoJob(created.job.id, ada.token);
    expect(fetched).toMatchObject({ status: 'COMPLETED', provider: 'RUNWAY', story: { title: 'The Lighthouse' } });
    expect(Date.parse(fetched.attempts[0].finishedAt)).toBeGreaterThanOrEqual(Date.parse(fetched.attempts[0].startedAt));
  });

  it('falls back: Runway fails, Pika times out, Luma succeeds; three attempts, one completed event, one charge', async () => {
    runway.behave({ kind: 'fail', message: 'Content moderation: the prompt was flagged' });
    pika.behave({ kind: 'hang' });
    luma.behave({ kind: 'succeed', polls: 2 });
    const [runwayBefore, pikaBefore, lumaBefore] = [runway.creations, pika.creations, luma.creations];
    const bo = await registerMember(stack, 'Bo');
    const storyId = await analysedStory(stack, bo.token, 'Three Tries');
    const created = await generate(bo.token, { storyId });
    const followed = follow(wsClient(bo.token), created.job.id);
    await followed.done;
    const last = followed.received.at(-1).data.videoJobUpdated;
    expect(last).toMatchObject({ status: 'COMPLETED', provider: 'LUMA', story: { title: 'Three Tries' } });
    expect(last.attempts).toEqual([
      { provider: 'RUNWAY', status: 'FAILED', error: expect.stringContaining('Content moderation') },
      { provider: 'PIKA', status: 'TIMED_OUT', error: expect.stringContaining('within') },
      { provider: 'LUMA', status: 'SUCCEEDED', error: null },
    ]);
    expect([runway.creations - runwayBefore, pika.creations - pikaBefore, luma.creations - lumaBefore]).toEqual([1, 1, 1]);
    // Pika's task, given up on, was cancelled at fal.ai rather than left to render and bill.
    expect(pika.cancellations).toBe(1);
    // Subscribers saw the provider change as the job fell back.
    const providers = followed.received.map((r) => r.data.videoJobUpdated.provider).filter(Boolean);
    expect(providers.indexOf('LUMA')).toBeGreaterThan(providers.indexOf('RUNWAY'));
    const detailed = await videoJob(created.job.id, bo.token);
    expect(detailed.attempts.map((a: { status: string }) => a.status)).toEqual(['FAILED', 'TIMED_OUT', 'SUCCEEDED']);
    const { rows } = await db.query(`select error_code, finished_at - started_at as took from video.video_attempt where job_id = $1 order by seq`, [created.job.id]);
    expect(rows.map((r) => r.error_code)).toEqual(['PROVIDER_FAILED', 'TIMEOUT', null]);

    const completed = await events.waitFor((e) => e.type === 'video.generation.completed' && e.payload.jobId === created.job.id);
    expect(completed.payload).toMatchObject({ provider: 'luma', attempts: [{ provider: 'runway', status: 'FAILED' }, { provider: 'pika', status: 'TIMED_OUT' }, { provider: 'luma', status: 'SUCCEEDED' }] });
    expect((await settledUsage(bo.token)).videosGenerated).toBe(1);
    expect(eventsOf(created.job.id)).toEqual(['video.generation.started', 'video.generation.completed']);
    expect((await db.query(`select count(*)::int as n from billing.outbox where envelope->>'type' = 'usage.limit.reached' and envelope->>'userId' = $1`, [bo.id])).rows[0].n).toBe(1);
  });

  it('fails with every attempt\'s error when all providers fail, and charges nothing', async () => {
    runway.behave({ kind: 'refuse', message: 'promptText: unsafe content' });
    pika.behave({ kind: 'fail', message: 'pika could not render' });
    luma.behave({ kind: 'down' });
    const cy = await registerMember(stack, 'Cy');
    const storyId = await analysedStory(stack, cy.token, 'Nobody Makes It');
    const created = await generate(cy.token, { storyId });
    const followed = follow(wsClient(cy.token), created.job.id);
    await followed.done;
    const last = followed.received.at(-1).data.videoJobUpdated;
    expect(last).toMatchObject({ status: 'FAILED', videoUrl: null, story: { title: 'Nobody Makes It' } });
    expect(last.attempts).toEqual([
      { provider: 'RUNWAY', status: 'FAILED', error: expect.stringContaining('unsafe') },
      { provider: 'PIKA', status: 'FAILED', error: expect.stringContaining('pika could not render') },
      { provider: 'LUMA', status: 'FAILED', error: expect.any(String) },
    ]);
    expect(last.error).toMatch(/runway: .*unsafe.*pika: .*could not render.*luma: /s);
    const failed = await events.waitFor((e) => e.type === 'video.generation.failed' && e.payload.jobId === created.job.id);
    expect(failed.payload.attempts).toHaveLength(3);
    expect(eventsOf(created.job.id)).toEqual(['video.generation.started', 'video.generation.failed']);
    // Nothing was charged, and a failed video does not use up the plan: the member may try again.
    expect((await settledUsage(cy.token)).videosGenerated).toBe(0);
    runway.behave({ kind: 'succeed' });
    const again = await generate(cy.token, { storyId });
    expect(again.userErrors).toEqual([]);
    await vi.waitFor(async () => expect((await videoJob(again.job.id, cy.token)).status).toBe('COMPLETED'), { timeout: 15_000, interval: 50 });
  });
});

describe('who may, and how much', () => {
  it('lets only the owner read or follow a job (FORBIDDEN), and only the author make one', async () => {
    runway.behave({ kind: 'succeed', polls: 2 });
    const dee = await registerMember(stack, 'Dee');
    const eve = await registerMember(stack, 'Eve');
    const storyId = await analysedStory(stack, dee.token, 'Private');
    const created = await generate(dee.token, { storyId });
    const read = await stack.gql(op.job, { id: created.job.id }, { token: eve.token });
    expect(read.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(read.data?.videoJob ?? null).toBeNull();
    const other = follow(wsClient(eve.token), created.job.id);
    await other.done;
    expect(other.received).toEqual([]);
    expect(JSON.stringify(other.error())).toContain('FORBIDDEN');
    // Eve cannot make a video of Dee's story either.
    const refused = await stack.gql(op.generate, { input: { storyId } }, { token: eve.token });
    expect(refused.errors?.[0]?.extensions?.code ?? refused.data?.generateVideo?.userErrors?.[0]?.code).toMatch(/FORBIDDEN|STORY_NOT_FOUND/);
    const missing = await generate(dee.token, { storyId: randomUUID() });
    expect(missing.userErrors).toEqual([{ code: 'STORY_NOT_FOUND', field: 'storyId', message: expect.any(String) }]);

    // Once the story is published, its readers see the finished video, but not how it was made.
    await vi.waitFor(async () => expect((await videoJob(created.job.id, dee.token)).status).toBe('COMPLETED'), { timeout: 15_000, interval: 50 });
    const videosOf = (token: string) => stack.gql(`query($id: ID!) { story(id: $id) { videos { id status videoUrl error attempts { provider } } } }`, { id: storyId }, { token });
    expect((await videosOf(eve.token)).data.story).toBeNull();
    expect((await stack.gql(op.publish, { id: storyId }, { token: dee.token })).data.publishStory.userErrors).toEqual([]);
    const seen = (await videosOf(eve.token)).data.story.videos;
    expect(seen).toEqual([{ id: created.job.id, status: 'COMPLETED', videoUrl: expect.stringMatching(/^http/), error: null, attempts: [] }]);
    expect((await videosOf(dee.token)).data.story.videos[0].attempts).toEqual([{ provider: 'RUNWAY' }]);
  });

  it('holds the plan\'s videos a month (FREE: 1), counting videos under way, and lifts it with a better plan', async () => {
    runway.behave({ kind: 'hang' });
    const fay = await registerMember(stack, 'Fay');
    const storyId = await analysedStory(stack, fay.token, 'Limits');
    const plans = await stack.gql(`{ plans { tier videosPerMonth } }`);
    expect(plans.data.plans.find((p: { tier: string }) => p.tier === 'FREE').videosPerMonth).toBe(1);
    // Five at once: one is queued, four are refused.
    const results = await Promise.all(Array.from({ length: 5 }, () => generate(fay.token, { storyId })));
    expect(results.filter((r) => r.job).length).toBe(1);
    expect(results.filter((r) => r.userErrors[0]?.code === 'PLAN_LIMIT_REACHED').length).toBe(4);
    expect((await stack.gql(op.changePlan, { tier: 'SILVER' }, { token: fay.token })).data.changePlan.userErrors).toEqual([]);
    await vi.waitFor(
      async () => {
        const next = await generate(fay.token, { storyId, preferredProvider: 'LUMA' });
        expect(next.userErrors).toEqual([]);
        expect(next.job.status).toBe('QUEUED');
      },
      { timeout: 10_000, interval: 100 },
    );
    // Let Fay's first job go (Runway gives up, the others make it), freeing the one worker slot.
    pika.behave({ kind: 'fail' });
    luma.behave({ kind: 'succeed' });
    runway.behave({ kind: 'succeed' });
    for (const task of runway.tasks) if (task.behaviour.kind === 'hang') task.behaviour = { kind: 'fail' };
  });

  it('tries the preferred provider first, and refuses one that is not enabled', async () => {
    luma.behave({ kind: 'succeed' });
    const gus = await registerMember(stack, 'Gus');
    const storyId = await analysedStory(stack, gus.token, 'Luma First');
    expect((await stack.gql(`{ videoProviders }`, {}, { token: gus.token })).data.videoProviders).toEqual(['RUNWAY', 'PIKA', 'LUMA']);
    const notEnabled = await generate(gus.token, { storyId, preferredProvider: 'LOCAL' });
    expect(notEnabled.userErrors).toEqual([{ code: 'PROVIDER_NOT_ENABLED', field: 'preferredProvider', message: expect.stringContaining('runway') }]);
    const badStyle = await generate(gus.token, { storyId, style: 'x'.repeat(201) });
    expect(badStyle.userErrors[0]).toMatchObject({ code: 'INVALID_INPUT', field: 'style' });
    const created = await generate(gus.token, { storyId, preferredProvider: 'LUMA', aspectRatio: 'PORTRAIT' });
    await vi.waitFor(async () => expect((await videoJob(created.job.id, gus.token)).status).toBe('COMPLETED'), { timeout: 15_000, interval: 50 });
    const job = await videoJob(created.job.id, gus.token);
    expect(job.attempts.map((a: { provider: string }) => a.provider)).toEqual(['LUMA']);
    const body = luma.requests.filter((r) => r.method === 'POST').at(-1)!.body as { aspect_ratio?: string };
    expect(body.aspect_ratio).toBe('9:16');
  });
});

describe('the event catalog', () => {
  it('lists every event video publishes, with exactly its payload fields', async () => {
    const catalog = JSON.parse(readFileSync(new URL('../schema/events/catalog.json', import.meta.url), 'utf8'));
    const published = events.received.filter((e) => e.type.startsWith('video.'));
    expect(new Set(published.map((e) => e.type))).toEqual(new Set(['video.generation.started', 'video.generation.completed', 'video.generation.failed']));
    for (const event of published) {
      expect(catalog[event.type]?.publisher).toBe('video');
      expect(Object.keys(event.payload).sort()).toEqual(Object.keys(catalog[event.type].payload).sort());
    }
    expect(catalog['video.generation.progress'].durable).toBe(false);
  });
});
