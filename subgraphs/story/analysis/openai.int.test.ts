import OpenAI from 'openai';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startFakeOpenAI, type FakeOpenAI, type FakeOpenAIRequest } from '../../../test/fakes/openai.js';
import { AnalysisFailed, EMOTIONS, GENRES, type StoryText } from './analyser.js';
import { OpenAIAnalyser, type OpenAIAnalyserOptions } from './openai.js';

let fake: FakeOpenAI;
beforeEach(async () => {
  fake = await startFakeOpenAI({ modelSnapshot: 'gpt-4o-mini-2024-07-18' });
});
afterEach(() => fake.close());

const analyser = (options: Partial<OpenAIAnalyserOptions> = {}) =>
  new OpenAIAnalyser({
    apiKey: fake.apiKey,
    baseURL: fake.url,
    model: 'gpt-4o-mini',
    timeoutMs: 5_000,
    maxRetries: 0,
    maxInputChars: 4_000,
    maxChunks: 8,
    ...options,
  });

const story: StoryText = {
  title: 'The Lighthouse',
  content: 'Late one night, young Mira climbed the tower stairs. At the top, old Reyes was waiting with a lamp and a story about the sea.',
};

/** The AnalysisFailed a promise rejects with (failing the test if it resolves or throws anything else). */
async function failureOf(promise: Promise<unknown>): Promise<AnalysisFailed> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AnalysisFailed);
  return error as AnalysisFailed;
}

const userMessage = (request: FakeOpenAIRequest) => String(request.body.messages?.find((m) => m.role === 'user')?.content);
const schemaName = (request: FakeOpenAIRequest) => request.body.response_format?.json_schema?.name;

describe('OpenAIAnalyser', () => {
  it('sends the story with a strict structured-output schema and maps the answer', async () => {
    const result = await analyser().analyse(story);

    expect(fake.requests).toHaveLength(1);
    const [request] = fake.requests as [FakeOpenAIRequest];
    expect(request.path).toBe('/v1/chat/completions');
    expect(request.headers.authorization).toBe(`Bearer ${fake.apiKey}`);
    expect(request.body.model).toBe('gpt-4o-mini');
    const format = request.body.response_format!;
    expect(format.type).toBe('json_schema');
    expect(format.json_schema).toMatchObject({ name: 'story_analysis', strict: true });
    const schema = format.json_schema!.schema!;
    expect(schema).toMatchObject({ type: 'object', additionalProperties: false, required: ['summary', 'genre', 'characters', 'emotions'] });
    expect(schema.properties!.genre).toMatchObject({ enum: [...GENRES] });
    expect(schema.properties!.characters!.items).toMatchObject({ additionalProperties: false, required: ['name', 'description', 'traits'] });
    expect(schema.properties!.emotions!.items).toMatchObject({ additionalProperties: false, required: ['label', 'intensity'] });
    expect(schema.properties!.emotions!.items!.properties!.label).toMatchObject({ enum: [...EMOTIONS] });
    expect(request.body.messages?.[0]?.role).toBe('system');
    expect(String(request.body.messages?.[0]?.content)).toMatch(/fiction/);
    expect(userMessage(request)).toContain(story.content);
    expect(userMessage(request)).toContain('The Lighthouse');

    expect(result).toEqual({
      summary: 'A story of 25 words about Mira, Reyes.',
      genre: 'adventure',
      characters: [
        { name: 'Mira', description: 'Mira appears in the story.', traits: ['curious'] },
        { name: 'Reyes', description: 'Reyes appears in the story.', traits: ['curious'] },
      ],
      emotions: [
        { label: 'joy', intensity: 0.6 },
        { label: 'fear', intensity: 0.3 },
      ],
      provider: 'openai',
      model: 'gpt-4o-mini-2024-07-18',
      notes: [],
    });
  });

  it('tidies what the model returns: clamped, deduplicated, capped and sorted', async () => {
    fake.answer(() => ({
      summary: '  Mira keeps the light.  ',
      genre: 'drama',
      characters: [
        ...Array.from({ length: 13 }, (_, i) => ({ name: `Keeper ${i + 1}`, description: `Keeper number ${i + 1}.`, traits: [] })),
        { name: 'keeper  1', description: 'The same keeper, again.', traits: ['Stubborn', ' brave '] },
      ],
      emotions: [
        { label: 'fear', intensity: 1.7 },
        { label: 'joy', intensity: 0.2 },
        { label: 'anger', intensity: -0.4 },
        { label: 'joy', intensity: 0.9 },
        { label: 'trust', intensity: 0 },
      ],
    }));

    const result = await analyser().analyse(story);

    expect(result.summary).toBe('Mira keeps the light.');
    expect(result.genre).toBe('drama');
    expect(result.characters).toHaveLength(12);
    expect(result.characters[0]).toEqual({ name: 'Keeper 1', description: 'Keeper number 1.', traits: ['stubborn', 'brave'] });
    expect(result.characters.map((c) => c.name)).not.toContain('Keeper 13');
    expect(result.emotions).toEqual([
      { label: 'fear', intensity: 1 },
      { label: 'joy', intensity: 0.2 },
    ]);
  });

  it('reports a refusal as REFUSED, with the model’s words', async () => {
    fake.refuse("I'm sorry, but I can't help with that.");
    const failure = await failureOf(analyser().analyse(story));
    expect(failure.reason).toBe('REFUSED');
    expect(failure.message).toBe("The model declined to analyse this story: I'm sorry, but I can't help with that.");
  });

  it('reports a content-filter stop as REFUSED and a cut-off answer as INVALID_RESPONSE', async () => {
    fake.finish('content_filter');
    expect((await failureOf(analyser().analyse(story))).reason).toBe('REFUSED');
    fake.finish('length');
    const truncated = await failureOf(analyser().analyse(story));
    expect(truncated.reason).toBe('INVALID_RESPONSE');
    expect(truncated.message).toMatch(/cut off/);
  });

  it('reports content that breaks the schema, or is not JSON, as INVALID_RESPONSE', async () => {
    fake.malformed('schema');
    const wrongShape = await failureOf(analyser().analyse(story));
    expect(wrongShape.reason).toBe('INVALID_RESPONSE');
    expect(wrongShape.message).toMatch(/expected shape/);
    fake.malformed('json');
    expect((await failureOf(analyser().analyse(story))).reason).toBe('INVALID_RESPONSE');
  });

  it('times out each attempt, retries, then reports TIMEOUT', async () => {
    fake.hang(2);
    const failure = await failureOf(analyser({ timeoutMs: 300, maxRetries: 1 }).analyse(story));
    expect(failure.reason).toBe('TIMEOUT');
    expect(failure.message).toBe('OpenAI did not answer within 300 ms (2 attempts).');
    expect(fake.requests).toHaveLength(2);
  });

  it('times out an answer whose body stops halfway (the SDK timeout alone ends at the headers)', async () => {
    fake.stall();
    const failure = await failureOf(analyser({ timeoutMs: 300 }).analyse(story));
    expect(failure.reason).toBe('TIMEOUT');
    expect(failure.message).toBe('OpenAI did not answer within 300 ms (1 attempt).');
    expect(fake.requests).toHaveLength(1);
  });

  it('retries server errors and succeeds within maxRetries', async () => {
    fake.fail(500, 2);
    const result = await analyser({ maxRetries: 2 }).analyse(story);
    expect(result.characters.map((c) => c.name)).toEqual(['Mira', 'Reyes']);
    expect(fake.requests).toHaveLength(3);
  });

  it('retries a rate limit, and reports it as PROVIDER_ERROR when it persists', async () => {
    fake.fail(429);
    await analyser({ maxRetries: 1 }).analyse(story);
    expect(fake.requests).toHaveLength(2);

    fake.fail(429, 2);
    const failure = await failureOf(analyser({ maxRetries: 1 }).analyse(story));
    expect(failure.reason).toBe('PROVIDER_ERROR');
    expect(failure.message).toBe('OpenAI answered 429 rate_limit_exceeded: Rate limit reached for requests. Please try again in 1ms.');
    expect(fake.requests).toHaveLength(4);
  });

  it('reports a refused API key as PROVIDER_ERROR without retrying and without the key', async () => {
    const wrongKey = 'sk-wrong-0123456789abcdef';
    const failure = await failureOf(analyser({ apiKey: wrongKey, maxRetries: 2 }).analyse(story));
    expect(failure.reason).toBe('PROVIDER_ERROR');
    expect(failure.message).toMatch(/refused the API key/);
    expect(failure.message).not.toContain(wrongKey);
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]!.headers.authorization).toBe(`Bearer ${wrongKey}`);
  });

  it('keeps the key out of a provider message that quotes it', async () => {
    fake.fail(400, 1, { message: `Invalid request made with key ${fake.apiKey}`, param: 'messages' });
    const failure = await failureOf(analyser().analyse(story));
    expect(failure.reason).toBe('PROVIDER_ERROR');
    expect(failure.message).toBe('OpenAI answered 400: Invalid request made with key [redacted]');
  });

  it('refuses an empty story without calling OpenAI', async () => {
    const failure = await failureOf(analyser().analyse({ title: 'Nothing yet', content: ' \n\n ' }));
    expect(failure.reason).toBe('EMPTY_STORY');
    expect(fake.requests).toHaveLength(0);
  });

  describe('a story longer than one request', () => {
    // About 2,000 characters: five times the 400 allowed per request. Mira acts in every
    // paragraph, Reyes in every other one, Tomas only at the end.
    const paragraphs = Array.from({ length: 10 }, (_, i) => {
      const cast = ['Mira', ...(i % 2 === 0 ? ['Reyes'] : []), ...(i === 9 ? ['Tomas'] : [])].join(' and ');
      return `Night ${i + 1}: the storm came back, and ${cast} kept the great lamp burning until dawn. The sea was loud, the stairs were cold, and nobody slept at all that night. The gulls circled the black rocks below.`;
    });
    const long: StoryText = { title: 'The Lighthouse', content: paragraphs.join('\n\n') };

    it('analyses it in parts, carries names forward, merges the parts and condenses the summaries', async () => {
      const result = await analyser({ maxInputChars: 400, maxChunks: 20 }).analyse(long);

      const parts = fake.requests.filter((r) => schemaName(r) === 'story_analysis');
      const summaries = fake.requests.filter((r) => schemaName(r) === 'story_summary');
      expect(parts.length).toBeGreaterThanOrEqual(5);
      expect(summaries).toHaveLength(1);
      expect(fake.requests.at(-1)).toBe(summaries[0]);
      expect(summaries[0]!.body.response_format?.json_schema).toMatchObject({
        strict: true,
        schema: { type: 'object', required: ['summary'], additionalProperties: false },
      });

      parts.forEach((request, i) => {
        const message = userMessage(request);
        expect(message).toContain(`part ${i + 1} of ${parts.length}`);
        const text = /<story>\n([\s\S]*)\n<\/story>/.exec(message)![1]!;
        expect(text.length).toBeLessThanOrEqual(400);
        expect(long.content).toContain(text);
        if (i > 0) expect(message).toMatch(/Characters named in earlier parts: Mira, Reyes/);
      });
      // Every word of the story went to exactly one part.
      const sent = parts.map((r) => /<story>\n([\s\S]*)\n<\/story>/.exec(userMessage(r))![1]!).join(' ');
      expect(sent.split(/\s+/)).toEqual(long.content.split(/\s+/));

      const condense = userMessage(summaries[0]!);
      for (let i = 1; i <= parts.length; i++) expect(condense).toContain(`Part ${i}: A story of`);

      expect(result.summary).toBe(`The whole story, condensed from ${parts.length} parts.`);
      expect(result.characters.map((c) => c.name)).toEqual(['Mira', 'Reyes', 'Tomas']);
      expect(result.emotions).toEqual([
        { label: 'joy', intensity: 0.6 },
        { label: 'fear', intensity: 0.3 },
      ]);
      expect(result.genre).toBe('adventure');
      expect(result.model).toBe('gpt-4o-mini-2024-07-18');
      expect(result.notes).toEqual([`analysed in ${parts.length} parts`]);
    });

    it('weights emotions and the genre vote by the length of each part', async () => {
      // The first part is a long paragraph and the second a short one.
      const uneven: StoryText = { title: 'T', content: `${'Mira ran. '.repeat(30)}\n\nReyes wept at last.` };
      let call = 0;
      fake.setDefault(() =>
        call++ === 0
          ? { summary: 'Running.', genre: 'adventure', characters: [], emotions: [{ label: 'joy', intensity: 1 }] }
          : call === 2
            ? { summary: 'Weeping.', genre: 'drama', characters: [], emotions: [{ label: 'sadness', intensity: 1 }] }
            : { summary: 'Mira ran; Reyes wept.' },
      );
      const result = await analyser({ maxInputChars: 310 }).analyse(uneven);
      expect(fake.requests).toHaveLength(3);
      const [first, second] = fake.requests.map(userMessage);
      const length = (m: string | undefined) => /<story>\n([\s\S]*)\n<\/story>/.exec(m!)![1]!.length;
      expect(length(first)).toBeGreaterThan(length(second));
      expect(result.genre).toBe('adventure');
      expect(result.summary).toBe('Mira ran; Reyes wept.');
      expect(result.emotions.map((e) => e.label)).toEqual(['joy', 'sadness']);
      expect(result.emotions[0]!.intensity + result.emotions[1]!.intensity).toBeCloseTo(1, 2);
      expect(result.emotions[0]!.intensity).toBeGreaterThan(0.9);
    });

    it('analyses only the first maxChunks parts and says how much it left out', async () => {
      const result = await analyser({ maxInputChars: 400, maxChunks: 2 }).analyse(long);

      const parts = fake.requests.filter((r) => schemaName(r) === 'story_analysis');
      expect(parts).toHaveLength(2);
      expect(fake.requests).toHaveLength(3);
      expect(userMessage(parts[0]!)).toContain('part 1 of 2');
      expect(userMessage(fake.requests[2]!)).toMatch(/beginning of the story; it continues beyond them/);
      expect(result.characters.map((c) => c.name)).not.toContain('Tomas');
      expect(result.notes).toHaveLength(1);
      const [, analysed] = /^analysed the first (\d+) of \d+ characters in 2 parts$/.exec(result.notes[0]!) ?? [];
      expect(Number(analysed)).toBeGreaterThan(400);
      expect(Number(analysed)).toBeLessThanOrEqual(800);
      expect(result.notes[0]).toContain(`of ${long.content.length} characters`);
      expect(long.content.length).toBeGreaterThanOrEqual(2_000);
    });

    it('skips the condensing call when only one part is analysed', async () => {
      const result = await analyser({ maxInputChars: 400, maxChunks: 1 }).analyse(long);
      expect(fake.requests).toHaveLength(1);
      expect(userMessage(fake.requests[0]!)).toMatch(/beginning of a longer story/);
      expect(result.summary).toMatch(/^A story of \d+ words about Mira, Reyes\.$/);
      expect(result.notes[0]).toMatch(/^analysed the first \d+ of \d+ characters in 1 part$/);
    });
  });

  describe('abort', () => {
    it('stops a request in flight when the signal aborts, with the abort rather than an AnalysisFailed', async () => {
      fake.hang();
      const controller = new AbortController();
      const analysis = analyser({ maxRetries: 2 }).analyse(story, { signal: controller.signal });
      await fake.waitForRequests(1);
      controller.abort();
      await expect(analysis).rejects.toMatchObject({ name: 'AbortError' });
      expect(fake.requests).toHaveLength(1);
    });

    it('does not wait out a retry-after when the signal aborts', async () => {
      // Were the abort to wait for the backoff, the test would time out.
      fake.fail(429, 1, undefined, { 'retry-after-ms': '120000' });
      const controller = new AbortController();
      const analysis = analyser({ maxRetries: 1 }).analyse(story, { signal: controller.signal });
      await fake.waitForRequests(1);
      controller.abort(new Error('subgraph stopping'));
      await expect(analysis).rejects.toThrow('subgraph stopping');
    });

    it('stops between the parts of a long story', async () => {
      const controller = new AbortController();
      // The first part's answer arrives with the signal already aborted.
      fake.setDefault(() => {
        controller.abort();
        return { summary: 'Part.', genre: 'drama', characters: [], emotions: [] };
      });
      const content = Array.from({ length: 6 }, () => 'The sea rose again and the keepers climbed the stairs.'.repeat(3)).join('\n\n');
      const analysis = analyser({ maxInputChars: 200 }).analyse({ title: 'T', content }, { signal: controller.signal });
      await expect(analysis).rejects.toMatchObject({ name: 'AbortError' });
      expect(fake.requests).toHaveLength(1);
    });
  });

  it('uses a fake that rejects what real strict mode rejects', async () => {
    const client = new OpenAI({ apiKey: fake.apiKey, baseURL: fake.url, maxRetries: 0 });
    const attempt = client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'hi' }],
      response_format: {
        type: 'json_schema',
        json_schema: { name: 'loose', strict: true, schema: { type: 'object', properties: { a: { type: 'string' } }, required: [], additionalProperties: false } },
      },
    });
    await expect(attempt).rejects.toMatchObject({ status: 400, message: expect.stringMatching(/Missing 'a'/) });
  });
});
