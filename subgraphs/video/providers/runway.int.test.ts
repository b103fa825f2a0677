import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RUNWAY_VERSION, startRunwayFake } from '../../../test/fakes/runway.js';
import type { VideoFake } from '../../../test/fakes/video-fake.js';
import { nearestDuration, VideoProviderError } from './provider.js';
import { brief, describeRemoteProvider, pollToEnd, SETTINGS, type ProviderFactory } from './remote-provider.contract.js';
import { createRunwayProvider } from './runway.js';

const runway: ProviderFactory = (fake, overrides = {}) => createRunwayProvider({ ...SETTINGS, apiKey: fake.apiKey, baseUrl: fake.url, model: 'gen4.5', ...overrides });

describeRemoteProvider({
  name: 'Runway',
  startFake: () => startRunwayFake(),
  provider: runway,
  reportsProgress: true,
  lostHandle: () => ({ id: randomUUID() }),
  cancelRequest: (fake, handle) => ({ method: 'DELETE', path: `/v1/tasks/${handle.id}`, authorization: `Bearer ${fake.apiKey}` }),
  afterCancel: { state: 'FAILED', code: 'CANCELLED' },
});

describe('Runway on the wire', () => {
  let fake: VideoFake;
  beforeAll(async () => {
    fake = await startRunwayFake({ apiKey: `key-${randomUUID()}` });
  });
  afterAll(() => fake.close());
  const signal = new AbortController().signal;
  const lastPost = () => fake.requests.filter((r) => r.method === 'POST').at(-1)!;

  it('posts /v1/text_to_video with the key, the API version and the brief, and polls /v1/tasks/{id}', async () => {
    fake.behave({ kind: 'succeed', polls: 1 });
    const provider = runway(fake);
    const told = brief();
    const handle = await provider.create(told, { signal });
    const post = lastPost();
    expect(post).toMatchObject({ method: 'POST', path: '/v1/text_to_video' });
    expect(post.headers.authorization).toBe(`Bearer ${fake.apiKey}`);
    expect(post.headers['x-runway-version']).toBe(RUNWAY_VERSION);
    expect(post.headers['content-type']).toMatch(/^application\/json/);
    expect(post.body).toEqual({ model: 'gen4.5', promptText: told.prompt, ratio: '1280:720', duration: 5 });
    expect(handle).toEqual({ id: fake.tasks.at(-1)!.id });
    expect(fake.tasks.at(-1)!.prompt).toBe(told.prompt);

    await pollToEnd(provider, handle);
    const poll = fake.requests.filter((r) => r.method === 'GET' && r.path.startsWith('/v1/')).at(-1)!;
    expect(poll.path).toBe(`/v1/tasks/${handle.id}`);
    expect(poll.headers.authorization).toBe(`Bearer ${fake.apiKey}`);
    expect(poll.headers['x-runway-version']).toBe(RUNWAY_VERSION);
  });

  it('asks for 720:1280 in portrait and rounds the length to one the model makes', async () => {
    fake.behave({ kind: 'succeed' });
    const asked = async (model: string, durationSeconds: number, aspectRatio: '16:9' | '9:16' = '16:9') => {
      await runway(fake, { model }).create(brief({ durationSeconds, aspectRatio }), { signal });
      const { ratio, duration } = lastPost().body as { ratio: string; duration: number };
      return [ratio, duration];
    };
    expect(await asked('gen4.5', 12, '9:16')).toEqual(['720:1280', 10]);
    expect(await asked('gen4.5', 1)).toEqual(['1280:720', 2]);
    expect(await asked('gen4.5', 6.4)).toEqual(['1280:720', 6]);
    expect(await asked('veo3.1', 5)).toEqual(['1280:720', 6]);
    expect(await asked('veo3.1_fast', 20, '9:16')).toEqual(['720:1280', 8]);
    expect(nearestDuration(3, [4, 6, 8])).toBe(4);
    expect(nearestDuration(7, [4, 6, 8])).toBe(8);
  });

  it('refuses a square video without asking Runway, whose models make none', async () => {
    const requests = fake.requests.length;
    const error = await runway(fake).create(brief({ aspectRatio: '1:1' }), { signal }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VideoProviderError);
    expect(error).toMatchObject({ reason: 'REFUSED', message: expect.stringContaining('1:1') });
    expect(fake.requests.length).toBe(requests);
  });

  it('reports Runway\'s failure code with its reason', async () => {
    fake.behave({ kind: 'fail', message: 'Input text did not pass moderation', code: 'SAFETY.INPUT.TEXT' });
    const provider = runway(fake);
    const statuses = await pollToEnd(provider, await provider.create(brief(), { signal }));
    expect(statuses.at(-1)).toEqual({ state: 'FAILED', message: 'Runway could not make the video: Input text did not pass moderation', code: 'SAFETY.INPUT.TEXT' });
  });

  it('needs a model whose ratios and lengths it knows, and a key', () => {
    expect(() => runway(fake, { model: 'gen3a_turbo' })).toThrow(/model must be one of gen4\.5, veo3\.1, veo3\.1_fast/);
    expect(() => runway(fake, { apiKey: '' })).toThrow(/apiKey is required/);
  });
});
