import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startFakeOpenAI, type FakeOpenAI } from './fakes/openai.js';
import { captureEvents } from './support/capture.js';
import { clientOperation } from './support/clients.js';
import { startTestStack, type TestStack } from './support/stack.js';

/**
 * Story analysis with STORY_ANALYSER=openai, through the gateway, against a fake OpenAI that
 * speaks the real chat-completions wire format: the official SDK makes the calls.
 */
const op = {
  register: clientOperation('Register'),
  create: clientOperation('CreateStory'),
  publish: clientOperation('PublishStory'),
  analyze: clientOperation('AnalyzeStory'),
  story: clientOperation('Story'),
};

const STORY = `Captain Reyes woke to alarms on the starship Meridian. The android Kade was already at the helm.
"The reactor is failing," said Kade. Captain Reyes trusted the android, though the crew did not.
Together they vented the core and watched the planet below turn from red to blue. Reyes smiled for the first time in years.`;

let stack: TestStack;
let openai: FakeOpenAI;
let events: Awaited<ReturnType<typeof captureEvents>>;
let token: string;
let db: pg.Client;

beforeAll(async () => {
  openai = await startFakeOpenAI();
  stack = await startTestStack({
    env: {
      STORY_ANALYSER: 'openai',
      OPENAI_API_KEY: openai.apiKey,
      OPENAI_BASE_URL: openai.url,
      OPENAI_ANALYSIS_MODEL: 'gpt-4o-mini',
      // Small, so a hanging provider fails the test's analysis quickly; not a race: the fake never answers.
      OPENAI_TIMEOUT_MS: '400',
      OPENAI_MAX_RETRIES: '1',
      STORY_ANALYSIS_POLL_MS: '200',
      // One at a time, so each test's queued fake behaviour meets its own story's request.
      STORY_ANALYSIS_CONCURRENCY: '1',
    },
  });
  events = await captureEvents(stack.transport, ['story.analysis.>']);
  db = new pg.Client({ connectionString: stack.databaseUrl });
  await db.connect();
  const res = await stack.gql(op.register, { input: { email: `ai-${randomUUID().slice(0, 8)}@example.com`, password: 'correct horse battery', displayName: 'Ana' } });
  token = res.data.register.session.accessToken;
  // More stories than FREE allows in a month; created only once the story subgraph knows the plan.
  expect((await stack.gql(clientOperation('ChangePlan'), { tier: 'GOLD' }, { token })).data.changePlan.userErrors).toEqual([]);
  await vi.waitFor(
    async () => {
      const { rows } = await db.query('select tier from story.entitlement where user_id = $1', [res.data.register.user.id]);
      if (rows[0]?.tier !== 'GOLD') throw new Error('the story subgraph does not know the plan yet');
    },
    { timeout: 10_000, interval: 20 },
  );
});

afterAll(async () => {
  await db?.end();
  await events?.stop();
  await stack?.close();
  await openai?.close();
});

async function storyWith(title: string) {
  const res = await stack.gql(op.create, { input: { title, content: STORY } }, { token });
  expect(res.data.createStory.userErrors).toEqual([]);
  return res.data.createStory.story.id as string;
}

const analysis = (id: string, status: string) =>
  vi.waitFor(
    async () => {
      const res = await stack.gql(op.story, { id }, { token });
      const found = res.data.story.analysis;
      if (found?.status !== status) throw new Error(`analysis is ${JSON.stringify(found?.status)}`);
      return res.data.story.analysis;
    },
    { timeout: 10_000, interval: 50 },
  );

describe('analysis with OpenAI', () => {
  it('asks for a strict json_schema and stores what the model answers', async () => {
    openai.answer(() => ({
      summary: 'Captain Reyes and the android Kade save the starship Meridian.',
      genre: 'science-fiction',
      characters: [
        { name: 'Captain Reyes', description: 'The captain of the Meridian.', traits: ['trusting', 'tired'] },
        { name: 'Kade', description: 'An android at the helm.', traits: ['calm'] },
      ],
      emotions: [
        { label: 'fear', intensity: 0.7 },
        { label: 'trust', intensity: 0.9 },
      ],
    }));
    const id = await storyWith('Meridian');
    const before = openai.requests.length;
    const published = await stack.gql(op.publish, { id }, { token });
    expect(published.data.publishStory.userErrors).toEqual([]);
    const done = await analysis(id, 'COMPLETED');
    expect(done).toMatchObject({
      summary: 'Captain Reyes and the android Kade save the starship Meridian.',
      genre: 'science-fiction',
      readingTimeMinutes: 1,
      emotions: [
        { label: 'trust', intensity: 0.9 },
        { label: 'fear', intensity: 0.7 },
      ],
    });
    expect(done.characters.map((c: { name: string; traits: string[] }) => [c.name, c.traits])).toEqual([
      ['Captain Reyes', ['trusting', 'tired']],
      ['Kade', ['calm']],
    ]);
    const request = openai.requests[before]!;
    expect(request.path).toBe('/v1/chat/completions');
    expect(request.headers.authorization).toBe(`Bearer ${openai.apiKey}`);
    expect(request.body.model).toBe('gpt-4o-mini');
    expect(request.body.response_format).toMatchObject({ type: 'json_schema', json_schema: { strict: true, schema: { additionalProperties: false } } });
    expect(JSON.stringify(request.body.messages)).toContain('The reactor is failing');
    const completed = await events.waitFor((e) => e.type === 'story.analysis.completed' && e.payload.storyId === id);
    expect(completed.payload).toMatchObject({ provider: 'openai', genre: 'science-fiction', dominantEmotion: 'trust' });
  });

  it('ends in FAILED with the reason when the model refuses', async () => {
    openai.refuse('I cannot help with that.');
    const id = await storyWith('Refused');
    const asked = (await stack.gql(op.analyze, { id }, { token })).data.analyzeStory;
    expect(asked.userErrors).toEqual([]);
    // A worker may have taken it (or even finished) by the time the payload is read.
    expect(['PENDING', 'RUNNING', 'FAILED']).toContain(asked.story.analysis.status);
    const failed = await analysis(id, 'FAILED');
    expect(failed.characters).toEqual([]);
    const full = await stack.gql(`query($id: ID!) { story(id: $id) { analysis { failureReason failureMessage } } }`, { id }, { token });
    expect(full.data.story.analysis).toEqual({ failureReason: 'REFUSED', failureMessage: expect.stringContaining('I cannot help with that.') });
    const event = await events.waitFor((e) => e.type === 'story.analysis.failed' && e.payload.storyId === id);
    expect(event.payload).toMatchObject({ reason: 'REFUSED', message: expect.stringContaining('I cannot help with that.') });
    const catalog = JSON.parse(readFileSync(new URL('../schema/events/catalog.json', import.meta.url), 'utf8'));
    expect(Object.keys(event.payload).sort()).toEqual(Object.keys(catalog['story.analysis.failed'].payload).sort());
  });

  it('ends in FAILED with TIMEOUT when OpenAI does not answer, after its retries', async () => {
    openai.hang(2);
    const id = await storyWith('Silence');
    const before = openai.requests.length;
    await stack.gql(op.analyze, { id }, { token });
    await analysis(id, 'FAILED');
    const full = await stack.gql(`query($id: ID!) { story(id: $id) { analysis { failureReason failureMessage } } }`, { id }, { token });
    expect(full.data.story.analysis.failureReason).toBe('TIMEOUT');
    expect(full.data.story.analysis.failureMessage).toMatch(/did not answer within 400 ms/);
    // One request and one retry (OPENAI_MAX_RETRIES=1).
    expect(openai.requests.length - before).toBe(2);
    expect((await events.waitFor((e) => e.type === 'story.analysis.failed' && e.payload.storyId === id)).payload.reason).toBe('TIMEOUT');
  });

  it('retries a server error and succeeds on the next answer', async () => {
    openai.fail(500, 1);
    const id = await storyWith('Second try');
    const before = openai.requests.length;
    await stack.gql(op.analyze, { id }, { token });
    const done = await analysis(id, 'COMPLETED');
    expect(done.characters.length).toBeGreaterThan(0);
    expect(openai.requests.length - before).toBe(2);
  });
});
