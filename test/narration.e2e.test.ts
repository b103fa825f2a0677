import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Client } from 'graphql-ws';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { LocalSpeechSynthesizer } from '../subgraphs/narration/providers/local-speech.js';
import { startFakeOpenAI, type FakeOpenAI } from './fakes/openai.js';
import { captureEvents } from './support/capture.js';
import { clientOperation } from './support/clients.js';
import { registerMember } from './support/people.js';
import { startTestStack, type TestStack } from './support/stack.js';
import { follow as followSubscription, wsClients } from './support/subscriptions.js';

/** ../shared/clients/media.graphql (voice and narration) through the gateway, HTTP and graphql-ws, with the local providers. */
const op = {
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
let openai: FakeOpenAI;
let events: Awaited<ReturnType<typeof captureEvents>>;
let db: pg.Client;
const ws = wsClients(() => stack.app.gatewayUrl);
const wsClient = ws.client;
const follow = (client: Client, jobId: string) => followSubscription(client, op.progress, { jobId });

beforeAll(async () => {
  openai = await startFakeOpenAI();
  stack = await startTestStack({
    env: {
      VOICE_SAMPLE_MAX_BYTES: String(MAX_SAMPLE_BYTES),
      // Stock voices through the OpenAI SDK against the fake (whose gate lets a test see a job
      // between its parts); cloned voices with the local providers.
      NARRATION_STOCK_TTS: 'openai',
      OPENAI_API_KEY: openai.apiKey,
      OPENAI_BASE_URL: openai.url,
      OPENAI_MAX_RETRIES: '0',
      NARRATION_CONCURRENCY: '1',
      SUBSCRIPTIONS_PER_CONNECTION: '30',
      SUBSCRIPTIONS_PER_USER: '120',
      // A subscribe spends a token like a request; this file opens 100 at once for one user.
      RATE_LIMIT_USER_BURST: '1000',
    },
  });
  events = await captureEvents(stack.transport, ['voice.>', 'narration.>']);
  db = new pg.Client({ connectionString: stack.databaseUrl });
  await db.connect();
});

afterAll(async () => {
  await ws.disposeAll();
  await db?.end();
  await events?.stop();
  await stack?.close();
  await openai?.close();
});

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
    const ada = await registerMember(stack, 'Ada');
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
    const bo = await registerMember(stack, 'Bo');
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
    const origin = new URL(stack.app.gatewayUrl).origin;
    const forged = await fetch(`${origin}/media/narration/uploads/not-a-token`, { method: 'PUT', headers: { 'content-type': 'audio/wav' }, body: 'x' });
    expect(forged.status).toBe(403);
    // The gateway forwards /media/<subgraph>/ to that subgraph's /media/ and nowhere else.
    for (const path of ['/media/narration/%2e%2e/health', '/media/narration/..%2Fgraphql', '/media/story/.%2E/health', '/media/narration/files/..\\..\\x', '/media/nobody/files/x']) {
      const res = await fetch(`${origin}${path}`);
      expect(res.status, path).toBe(404);
      expect(await res.text(), path).not.toContain('"subgraph"');
    }
  });
});



describe('narration with live progress', () => {
  it('narrates a story in a stock voice; the subscription follows it to COMPLETED and the audio downloads', async () => {
    const cy = await registerMember(stack, 'Cy');
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
    expect(audio.headers.get('content-type')).toBe('audio/mpeg');
    const bytes = Buffer.from(await audio.arrayBuffer());
    expect(bytes.length).toBeGreaterThan(1000);
    // One MP3 made of the parts OpenAI read: no part's ID3 tag left inside.
    expect(bytes.indexOf('ID3')).toBeLessThanOrEqual(0);
    const completed = await events.waitFor((e) => e.type === 'narration.generation.completed' && e.payload.jobId === job.id);
    expect(completed.userId).toBe(cy.id);
    const fetched = await stack.gql(op.job, { id: job.id }, { token: cy.token });
    expect(fetched.data.narrationJob).toMatchObject({ status: 'COMPLETED', story: { title: 'Read Me' } });
  });

  it('refuses another user FORBIDDEN and an unauthenticated connection', async () => {
    const dee = await registerMember(stack, 'Dee');
    const eve = await registerMember(stack, 'Eve');
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
    const fay = await registerMember(stack, 'Fay');
    for (const label of ['a', 'b', 'c', 'd', 'e']) expect((await upload(fay.token, label)).put.status).toBe(201);
    expect((await stack.gql(op.clone, {}, { token: fay.token })).data.cloneVoice.userErrors).toEqual([]);
    const story = (await stack.gql(op.createStory, { input: { title: 'In my voice', content: 'Once upon a time.' } }, { token: fay.token })).data.createStory.story;
    const notCloned = await registerMember(stack, 'Gus');
    const gusStory = (await stack.gql(op.createStory, { input: { title: 'No voice', content: 'Text.' } }, { token: notCloned.token })).data.createStory.story;
    const refused = await stack.gql(op.narrate, { input: { storyId: gusStory.id, voice: 'CLONED' } }, { token: notCloned.token });
    expect(refused.data.narrateStory.userErrors[0].code).toBe('VOICE_NOT_CLONED');
    const job = (await stack.gql(op.narrate, { input: { storyId: story.id, voice: 'CLONED' } }, { token: fay.token })).data.narrateStory.job;
    await events.waitFor((e) => e.type === 'narration.generation.completed' && e.payload.jobId === job.id);
    const res = await stack.gql(`query($id: ID!) { story(id: $id) { narrations { id status audioUrl voice { name } } } }`, { id: story.id }, { token: fay.token });
    expect(res.data.story.narrations).toEqual([{ id: job.id, status: 'COMPLETED', audioUrl: expect.stringContaining('/media/narration/files/'), voice: { name: 'cloned' } }]);
  });
});

describe('live progress, shared', () => {
  const story = async (token: string, title: string, parts: number) => {
    // Parts of at most 4096 characters (OpenAI's limit): `parts` paragraphs of about 4,000.
    const paragraph = (n: number) => `Paragraph ${n}. ` + 'The narrator reads on. '.repeat(170);
    const content = Array.from({ length: parts }, (_, n) => paragraph(n)).join('\n\n');
    return (await stack.gql(op.createStory, { input: { title, content } }, { token })).data.createStory.story.id as string;
  };
  const narrate = async (token: string, storyId: string) => {
    const res = await stack.gql(op.narrate, { input: { storyId, voice: 'STOCK', stockVoice: 'alloy' } }, { token });
    expect(res.data.narrateStory.userErrors).toEqual([]);
    return res.data.narrateStory.job.id as string;
  };
  const eventually = (check: () => void) => vi.waitFor(check, { timeout: 10_000, interval: 10 });

  it('delivers QUEUED, then RUNNING with rising progress, then COMPLETED, one event per change', async () => {
    const hal = await registerMember(stack, 'Hal');
    const gate = openai.speechGate();
    try {
      // The one worker slot is taken by a job waiting on OpenAI, so the next one stays QUEUED.
      const blocker = await narrate(hal.token, await story(hal.token, 'Blocker', 1));
      await eventually(() => expect(gate.waiting()).toBe(1));
      const jobId = await narrate(hal.token, await story(hal.token, 'Three parts', 3));
      const followed = follow(wsClient(hal.token), jobId);
      const states = () => followed.received.map((r) => `${r.data.narrationJobUpdated.status} ${r.data.narrationJobUpdated.progress.toFixed(2)}`);
      await eventually(() => expect(states()).toEqual(['QUEUED 0.00']));
      gate.release(1); // the blocker's only part: it completes, and the job starts
      await eventually(() => expect(gate.waiting()).toBe(1));
      await eventually(() => expect(states()).toEqual(['QUEUED 0.00', 'RUNNING 0.00']));
      gate.release(1);
      await eventually(() => expect(states().at(-1)).toBe('RUNNING 0.25'));
      gate.release(1);
      await eventually(() => expect(states().at(-1)).toBe('RUNNING 0.50'));
      gate.release(1);
      await followed.done;
      // The last part and the joining follow each other with nothing to wait on: the state in
      // between may already be gone when the gateway fetches (one fetch sees the latest state).
      expect(states().slice(0, 4)).toEqual(['QUEUED 0.00', 'RUNNING 0.00', 'RUNNING 0.25', 'RUNNING 0.50']);
      expect(states().slice(4)).toEqual(expect.arrayContaining(['COMPLETED 1.00']));
      expect(['RUNNING 0.75,COMPLETED 1.00', 'COMPLETED 1.00']).toContain(states().slice(4).join(','));
      expect(followed.received.at(-1).data.narrationJobUpdated.audioUrl).toMatch(/^http/);
      expect(blocker).not.toBe(jobId);
    } finally {
      gate.open();
    }
  });

  it('serves 100 identical subscriptions with one fetch per event, and leaves nothing behind', async () => {
    const ivy = await registerMember(stack, 'Ivy');
    const gate = openai.speechGate();
    try {
      const jobId = await narrate(ivy.token, await story(ivy.token, 'Watched', 2));
      await eventually(() => expect(gate.waiting()).toBe(1));
      const connections = [wsClient(ivy.token), wsClient(ivy.token), wsClient(ivy.token), wsClient(ivy.token)];
      const followers = Array.from({ length: 100 }, (_, n) => follow(connections[n % 4]!, jobId));
      await eventually(() => expect(followers.every((f) => f.received.length === 1)).toBe(true));
      expect(stack.app.gateway.subscriptions.hub.stats()).toEqual({ groups: 1, subjects: 1, subscribers: 100 });
      // The 101st over this connection's limit of 30, and over the user's limit of 120 later.
      const hub = stack.app.gateway.subscriptions.hub;
      const knex = stack.app.subgraphs.find((s) => s.name === 'narration')!.orm.em.getConnection().getKnex();
      let jobReads = 0;
      const onQuery = (q: { sql: string }) => {
        if (/^select .* from "narration"\."narration_job"/is.test(q.sql.trim())) jobReads++;
      };
      knex.on('query', onQuery);
      const fetchesBefore = hub.fetches;
      try {
        gate.release(1); // one part done: one live event
        await eventually(() => expect(followers.every((f) => f.received.length === 2)).toBe(true));
        // Let the worker reach the next part (its own reads are not the subscriptions').
        await eventually(() => expect(gate.waiting()).toBe(1));
      } finally {
        knex.off('query', onQuery);
      }
      expect(hub.fetches - fetchesBefore).toBe(1);
      // The worker's own reads happen at a job's start, not per part: the one read is the fetch.
      expect(jobReads).toBe(1);
      gate.open();
      await Promise.all(followers.map((f) => f.done));
      expect(followers.every((f) => f.received.at(-1).data.narrationJobUpdated.status === 'COMPLETED')).toBe(true);
      await eventually(() => expect(hub.stats()).toEqual({ groups: 0, subjects: 0, subscribers: 0 }));
      expect(stack.app.live.subscriptionCount()).toBe(0);
      expect(stack.app.gateway.subscriptions.openSubscriptions()).toBe(0);
    } finally {
      gate.open();
    }
  });

  it('limits subscriptions per connection, and frees them when a client disconnects', async () => {
    const jo = await registerMember(stack, 'Jo');
    const gate = openai.speechGate();
    try {
      const jobId = await narrate(jo.token, await story(jo.token, 'Limited', 1));
      await eventually(() => expect(gate.waiting()).toBe(1));
      const connection = wsClient(jo.token);
      const followers = Array.from({ length: 31 }, () => follow(connection, jobId));
      // Waited for with a deadline and a description, not awaited: if another than the one
      // expected is refused, the expected one is let in and would be waited for forever.
      const ended = (list: typeof followers) => list.map((f, n) => [n, f.received.length, f.error()]).filter(([, , e]) => e);
      await eventually(() => expect(followers.filter((f) => f.received.length === 1)).toHaveLength(30));
      await eventually(() => expect(ended(followers).map(([n]) => n)).toEqual([30]));
      expect((followers[30]!.error() as any[])[0].extensions.code).toBe('TOO_MANY_SUBSCRIPTIONS');
      // The user's limit (120) holds across connections: 30 here and 91 asked on four more, of
      // which 90 are served and one refused. Which one depends on how the four connections'
      // requests interleave (seen in CI: the 90th, not the 91st), so the test does not say.
      const more = [wsClient(jo.token), wsClient(jo.token), wsClient(jo.token), wsClient(jo.token)];
      const others = Array.from({ length: 91 }, (_, n) => follow(more[Math.floor(n / 30)]!, jobId));
      await eventually(() => expect(others.filter((f) => f.received.length === 1)).toHaveLength(90));
      await eventually(() => expect(ended(others)).toHaveLength(1));
      const [, deliveries, refusal] = ended(others)[0] as [number, number, any[]];
      expect(deliveries).toBe(0);
      expect(refusal[0]).toMatchObject({ message: 'At most 120 subscriptions per user', extensions: { code: 'TOO_MANY_SUBSCRIPTIONS' } });
      await connection.dispose();
      for (const client of more) await client.dispose();
      await eventually(() => expect(stack.app.gateway.subscriptions.hub.stats().subscribers).toBe(0));
      expect(stack.app.live.subscriptionCount()).toBe(0);
      expect(stack.app.gateway.subscriptions.openSubscriptions()).toBe(0);
    } finally {
      gate.open();
    }
  });
});

describe('narration failures', () => {
  it('ends FAILED with the provider\'s reason, and the subscription completes with it', async () => {
    const kai = await registerMember(stack, 'Kai');
    const story = (await stack.gql(op.createStory, { input: { title: 'Refused', content: 'A story OpenAI will not read.' } }, { token: kai.token })).data.createStory.story;
    openai.speechFail(400, 1, { message: 'Input was rejected', type: 'invalid_request_error', code: 'invalid_value' });
    const job = (await stack.gql(op.narrate, { input: { storyId: story.id, voice: 'STOCK', stockVoice: 'alloy' } }, { token: kai.token })).data.narrateStory.job;
    const followed = follow(wsClient(kai.token), job.id);
    await followed.done;
    const last = followed.received.at(-1).data.narrationJobUpdated;
    expect(last).toMatchObject({ status: 'FAILED', audioUrl: null, error: expect.stringContaining('400') });
    const failed = await events.waitFor((e) => e.type === 'narration.generation.failed' && e.payload.jobId === job.id);
    expect(failed.payload.error).toBe(last.error);
    expect(events.received.filter((e) => e.type === 'narration.generation.completed' && e.payload.jobId === job.id)).toEqual([]);
  });

  it('refuses narrating a story that is not the caller\'s, or a stock voice that does not exist', async () => {
    const lee = await registerMember(stack, 'Lee');
    const max = await registerMember(stack, 'Max');
    const story = (await stack.gql(op.createStory, { input: { title: 'Lee\'s', content: 'Text.' } }, { token: lee.token })).data.createStory.story;
    const other = await stack.gql(op.narrate, { input: { storyId: story.id, voice: 'STOCK', stockVoice: 'alloy' } }, { token: max.token });
    expect(other.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const badVoice = await stack.gql(op.narrate, { input: { storyId: story.id, voice: 'STOCK', stockVoice: 'nobody' } }, { token: lee.token });
    expect(badVoice.data.narrateStory.userErrors[0]).toMatchObject({ code: 'INVALID_INPUT', field: 'stockVoice' });
    const missing = await stack.gql(op.narrate, { input: { storyId: randomUUID(), voice: 'STOCK', stockVoice: 'alloy' } }, { token: lee.token });
    expect(missing.data.narrateStory.userErrors[0].code).toBe('STORY_NOT_FOUND');
    expect((await db.query('select count(*)::int as n from narration.narration_job where story_id = $1', [story.id])).rows[0].n).toBe(0);
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
