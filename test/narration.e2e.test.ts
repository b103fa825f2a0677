import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createClient, type Client } from 'graphql-ws';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { LocalSpeechSynthesizer } from '../subgraphs/narration/providers/local-speech.js';
import { captureEvents } from './support/capture.js';
import { clientOperation } from './support/clients.js';
import { startTestStack, type TestStack } from './support/stack.js';

/** ../shared/clients/media.graphql (voice and narration) through the gateway, HTTP and graphql-ws, with the local providers. */
const op = {
  register: clientOperation('Register'),
  createStory: clientOperation('CreateStory'),
  createUpload: clientOperation('CreateVoiceSampleUpload'),
  myVoice: clientOperation('MyVoice'),
  clone: clientOperation('CloneVoice'),
  narrate: clientOperation('NarrateStory'),
  job: clientOperation('NarrationJob'),
  progress: clientOperation('NarrationProgress'),
};

const MAX_SAMPLE_BYTES = 64 * 1024;
let stack: TestStack;
let events: Awaited<ReturnType<typeof captureEvents>>;
let db: pg.Client;
const clients: Client[] = [];

beforeAll(async () => {
  stack = await startTestStack({ env: { VOICE_SAMPLE_MAX_BYTES: String(MAX_SAMPLE_BYTES) } });
  events = await captureEvents(stack.transport, ['voice.>', 'narration.>']);
  db = new pg.Client({ connectionString: stack.databaseUrl });
  await db.connect();
});

afterAll(async () => {
  for (const client of clients) await client.dispose();
  await db?.end();
  await events?.stop();
  await stack?.close();
});

async function member(name: string) {
  const res = await stack.gql(op.register, { input: { email: `${name}-${randomUUID().slice(0, 8)}@example.com`, password: 'correct horse battery', displayName: name } });
  expect(res.data.register.userErrors).toEqual([]);
  return { id: res.data.register.user.id as string, token: res.data.register.session.accessToken as string };
}

/** A short WAV, as a phone would record it (the local synthesizer writes real ones). */
const recording = async (text: string) => (await new LocalSpeechSynthesizer().synthesize(text, { kind: 'STOCK', stockVoice: 'alloy' })).audio;

async function upload(token: string, label: string, body?: Buffer, contentType = 'audio/wav') {
  const created = await stack.gql(op.createUpload, { input: { kind: 'EMOTION', label, contentType: 'audio/wav' } }, { token });
  expect(created.data.createVoiceSampleUpload.userErrors).toEqual([]);
  const { uploadUrl, sample } = created.data.createVoiceSampleUpload;
  const put = await fetch(uploadUrl, { method: 'PUT', headers: { 'content-type': contentType }, body: body ?? (await recording(`Sample ${label}`)) });
  return { put, sample, uploadUrl };
}

describe('voice samples and cloning', () => {
  it('uploads samples through one-time links, refuses a clone with 4, clones with 5 and locks them', async () => {
    const ada = await member('Ada');
    const first = await upload(ada.token, 'joy');
    expect(first.put.status).toBe(201);
    expect(new URL(first.uploadUrl).pathname).toMatch(/^\/media\/narration\/uploads\//);
    // The link works once.
    const again = await fetch(first.uploadUrl, { method: 'PUT', headers: { 'content-type': 'audio/wav' }, body: await recording('again') });
    expect(again.status).toBe(409);
    for (const label of ['anger', 'whisper', 'laugh']) expect((await upload(ada.token, label)).put.status).toBe(201);

    const four = await stack.gql(op.clone, {}, { token: ada.token });
    expect(four.data.cloneVoice.userErrors).toEqual([{ code: 'NOT_ENOUGH_SAMPLES', field: null, message: expect.stringContaining('5') }]);
    expect((await stack.gql(op.myVoice, {}, { token: ada.token })).data.me.voice).toMatchObject({ status: 'COLLECTING', sampleCount: 4, requiredSamples: 5 });

    expect((await upload(ada.token, 'sigh')).put.status).toBe(201);
    expect((await stack.gql(op.myVoice, {}, { token: ada.token })).data.me.voice.status).toBe('READY_TO_CLONE');
    const five = await stack.gql(op.clone, {}, { token: ada.token });
    expect(five.data.cloneVoice).toEqual({ voice: { status: 'CLONED' }, userErrors: [] });
    const voice = (await stack.gql(op.myVoice, {}, { token: ada.token })).data.me.voice;
    expect(voice).toMatchObject({ status: 'CLONED', sampleCount: 5 });
    expect(voice.samples.map((s: { locked: boolean }) => s.locked)).toEqual([true, true, true, true, true]);
    const cloned = await events.waitFor((e) => e.type === 'voice.cloned' && e.userId === ada.id);
    expect(cloned.payload).toMatchObject({ provider: 'local', samples: 5 });
    // Billing counts it.
    await vi.waitFor(
      async () => {
        const me = await stack.gql(`{ me { membership { usage { voiceClones } } } }`, {}, { token: ada.token });
        expect(me.data.me.membership.usage.voiceClones).toBe(1);
      },
      { timeout: 10_000, interval: 50 },
    );
    expect((await stack.gql(op.clone, {}, { token: ada.token })).data.cloneVoice.userErrors[0].code).toBe('ALREADY_CLONED');
  });

  it('refuses an upload of the wrong type or over the limit, and stores nothing', async () => {
    const bo = await member('Bo');
    const wrongType = await upload(bo.token, 'joy', undefined, 'image/png');
    expect(wrongType.put.status).toBe(415);
    const tooLarge = await upload(bo.token, 'anger', Buffer.alloc(MAX_SAMPLE_BYTES + 1, 1));
    expect(tooLarge.put.status).toBe(413);
    const { rows } = await db.query('select uploaded_at, size_bytes from narration.voice_sample where user_id = $1', [bo.id]);
    expect(rows).toEqual([
      { uploaded_at: null, size_bytes: null },
      { uploaded_at: null, size_bytes: null },
    ]);
    expect((await stack.gql(op.myVoice, {}, { token: bo.token })).data.me.voice).toMatchObject({ sampleCount: 0, status: 'COLLECTING' });
    const badType = await stack.gql(op.createUpload, { input: { kind: 'SOUND', label: 'x', contentType: 'text/plain' } }, { token: bo.token });
    expect(badType.data.createVoiceSampleUpload.userErrors[0]).toMatchObject({ code: 'INVALID_INPUT', field: 'contentType' });
    const forged = await fetch(`${new URL(stack.app.gatewayUrl).origin}/media/narration/uploads/not-a-token`, { method: 'PUT', headers: { 'content-type': 'audio/wav' }, body: 'x' });
    expect(forged.status).toBe(403);
  });
});

function wsClient(token: string | null) {
  const client = createClient({
    url: stack.app.gatewayUrl.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: token ? { authorization: `Bearer ${token}` } : {},
    retryAttempts: 0,
    lazy: true,
  });
  clients.push(client);
  return client;
}

/** Collects a subscription's deliveries until it completes or fails. */
function follow(client: Client, jobId: string) {
  const received: any[] = [];
  let error: unknown = null;
  const done = new Promise<void>((resolve) => {
    client.subscribe(
      { query: op.progress, variables: { jobId } },
      {
        next: (value) => received.push(value),
        error: (e) => {
          error = e;
          resolve();
        },
        complete: () => resolve(),
      },
    );
  });
  return { received, done, error: () => error };
}

describe('narration with live progress', () => {
  it('narrates a story in a stock voice; the subscription follows it to COMPLETED and the audio downloads', async () => {
    const cy = await member('Cy');
    const content = Array.from({ length: 30 }, (_, n) => `Sentence ${n} of a story that the narrator reads slowly, word by word.`).join(' ');
    const story = (await stack.gql(op.createStory, { input: { title: 'Read Me', content } }, { token: cy.token })).data.createStory.story;
    const narrated = await stack.gql(op.narrate, { input: { storyId: story.id, voice: 'STOCK', stockVoice: 'alloy' } }, { token: cy.token });
    expect(narrated.data.narrateStory.userErrors).toEqual([]);
    const job = narrated.data.narrateStory.job;
    expect(job).toMatchObject({ status: 'QUEUED', progress: 0 });
    const followed = follow(wsClient(cy.token), job.id);
    await followed.done;
    expect(followed.error()).toBeNull();
    const last = followed.received.at(-1).data.narrationJobUpdated;
    expect(last).toMatchObject({ id: job.id, status: 'COMPLETED', progress: 1, error: null, story: { id: story.id, title: 'Read Me', author: { displayName: 'Cy' } } });
    const audio = await fetch(last.audioUrl);
    expect(audio.status).toBe(200);
    expect(audio.headers.get('content-type')).toBe('audio/wav');
    const bytes = Buffer.from(await audio.arrayBuffer());
    expect(bytes.subarray(0, 4).toString()).toBe('RIFF');
    const completed = await events.waitFor((e) => e.type === 'narration.generation.completed' && e.payload.jobId === job.id);
    expect(completed.userId).toBe(cy.id);
    const fetched = await stack.gql(op.job, { id: job.id }, { token: cy.token });
    expect(fetched.data.narrationJob).toMatchObject({ status: 'COMPLETED', story: { title: 'Read Me' } });
  });

  it('refuses another user FORBIDDEN and an unauthenticated connection', async () => {
    const dee = await member('Dee');
    const eve = await member('Eve');
    const story = (await stack.gql(op.createStory, { input: { title: 'Mine', content: 'A short story.' } }, { token: dee.token })).data.createStory.story;
    const job = (await stack.gql(op.narrate, { input: { storyId: story.id, voice: 'STOCK', stockVoice: 'alloy' } }, { token: dee.token })).data.narrateStory.job;
    const other = follow(wsClient(eve.token), job.id);
    await other.done;
    expect(other.received).toEqual([]);
    expect((other.error() as any[])[0].extensions.code).toBe('FORBIDDEN');
    const anonymous = follow(wsClient(null), job.id);
    await anonymous.done;
    expect(anonymous.received).toEqual([]);
    expect((anonymous.error() as { code?: number }).code).toBe(4403);
    // Nothing is left behind by refused subscriptions.
    await vi.waitFor(() => expect(stack.app.gateway.subscriptions.hub.stats()).toEqual({ groups: 0, subjects: 0, subscribers: 0 }), { timeout: 5000 });
  });

  it('narrates in the cloned voice', async () => {
    const fay = await member('Fay');
    for (const label of ['a', 'b', 'c', 'd', 'e']) expect((await upload(fay.token, label)).put.status).toBe(201);
    expect((await stack.gql(op.clone, {}, { token: fay.token })).data.cloneVoice.userErrors).toEqual([]);
    const story = (await stack.gql(op.createStory, { input: { title: 'In my voice', content: 'Once upon a time.' } }, { token: fay.token })).data.createStory.story;
    const notCloned = await member('Gus');
    const gusStory = (await stack.gql(op.createStory, { input: { title: 'No voice', content: 'Text.' } }, { token: notCloned.token })).data.createStory.story;
    const refused = await stack.gql(op.narrate, { input: { storyId: gusStory.id, voice: 'CLONED' } }, { token: notCloned.token });
    expect(refused.data.narrateStory.userErrors[0].code).toBe('VOICE_NOT_CLONED');
    const job = (await stack.gql(op.narrate, { input: { storyId: story.id, voice: 'CLONED' } }, { token: fay.token })).data.narrateStory.job;
    await events.waitFor((e) => e.type === 'narration.generation.completed' && e.payload.jobId === job.id);
    const res = await stack.gql(`query($id: ID!) { story(id: $id) { narrations { id status audioUrl voice { name } } } }`, { id: story.id }, { token: fay.token });
    expect(res.data.story.narrations).toEqual([{ id: job.id, status: 'COMPLETED', audioUrl: expect.stringContaining('/media/narration/files/'), voice: { name: 'cloned' } }]);
  });
});

describe('the event catalog', () => {
  it('lists every event narration publishes, with exactly its payload fields', async () => {
    const catalog = JSON.parse(readFileSync(new URL('../schema/events/catalog.json', import.meta.url), 'utf8'));
    for (const type of ['voice.cloned', 'narration.generation.started', 'narration.generation.completed']) await events.waitFor((e) => e.type === type);
    for (const event of events.received.filter((e) => e.serviceName === 'narration')) {
      expect(catalog[event.type]?.publisher, event.type).toBe('narration');
      expect(Object.keys(event.payload).sort(), event.type).toEqual(Object.keys(catalog[event.type].payload).sort());
    }
  });
});
