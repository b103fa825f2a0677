import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLumaFake } from '../../../test/fakes/luma.js';
import type { VideoFake } from '../../../test/fakes/video-fake.js';
import { createLumaProvider } from './luma.js';
import { brief, describeRemoteProvider, pollToEnd, SETTINGS, type ProviderFactory } from './remote-provider.contract.js';

const luma: ProviderFactory = (fake, overrides = {}) => createLumaProvider({ ...SETTINGS, apiKey: fake.apiKey, baseUrl: fake.url, model: 'ray-2', ...overrides });

describeRemoteProvider({
  name: 'Luma',
  startFake: () => startLumaFake(),
  provider: luma,
  reportsProgress: false,
  lostHandle: () => ({ id: randomUUID() }),
  cancelRequest: (fake, handle) => ({ method: 'DELETE', path: `/dream-machine/v1/generations/${handle.id}`, authorization: `Bearer ${fake.apiKey}` }),
  // Deleted: Luma knows it no more.
  afterCancel: 'lost',
});

describe('Luma on the wire', () => {
  let fake: VideoFake;
  beforeAll(async () => {
    fake = await startLumaFake({ apiKey: `luma-${randomUUID()}` });
  });
  afterAll(() => fake.close());
  const signal = new AbortController().signal;
  const lastPost = () => fake.requests.filter((r) => r.method === 'POST').at(-1)!;

  it('posts /generations/video under /dream-machine/v1 with the key and the brief, and polls /generations/{id}', async () => {
    fake.behave({ kind: 'succeed', polls: 1 });
    const provider = luma(fake);
    const told = brief();
    const handle = await provider.create(told, { signal });
    const post = lastPost();
    expect(post).toMatchObject({ method: 'POST', path: '/dream-machine/v1/generations/video' });
    expect(post.headers.authorization).toBe(`Bearer ${fake.apiKey}`);
    expect(post.body).toEqual({ model: 'ray-2', prompt: told.prompt, aspect_ratio: '16:9', duration: '5s' });
    expect(handle).toEqual({ id: fake.tasks.at(-1)!.id });

    await pollToEnd(provider, handle);
    const poll = fake.requests.filter((r) => r.method === 'GET' && !r.path.startsWith('/cdn/')).at(-1)!;
    expect(poll.path).toBe(`/dream-machine/v1/generations/${handle.id}`);
    expect(poll.headers.authorization).toBe(`Bearer ${fake.apiKey}`);
  });

  it('passes every aspect ratio through and rounds the length to 5 s or 9 s', async () => {
    fake.behave({ kind: 'succeed' });
    const asked = async (durationSeconds: number, aspectRatio: '16:9' | '9:16' | '1:1') => {
      await luma(fake, { model: 'ray-flash-2' }).create(brief({ durationSeconds, aspectRatio }), { signal });
      const { aspect_ratio, duration, model } = lastPost().body as Record<string, string>;
      return [model, aspect_ratio, duration];
    };
    expect(await asked(6, '1:1')).toEqual(['ray-flash-2', '1:1', '5s']);
    expect(await asked(7, '9:16')).toEqual(['ray-flash-2', '9:16', '9s']);
    expect(await asked(15, '16:9')).toEqual(['ray-flash-2', '16:9', '9s']);
  });

  it('serves the older SDKs\' POST /generations too, and the adapter follows such a generation', async () => {
    fake.behave({ kind: 'succeed', polls: 1 });
    const response = await fetch(`${fake.url}/generations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${fake.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'ray-2', prompt: 'A fox in the snow' }),
    });
    expect(response.status).toBe(201);
    const created = (await response.json()) as { id: string; state: string };
    expect(created.state).toBe('queued');
    expect(fake.tasks.at(-1)).toMatchObject({ id: created.id, prompt: 'A fox in the snow', createdOn: '/dream-machine/v1/generations' });
    const statuses = await pollToEnd(luma(fake), { id: created.id });
    expect(statuses.at(-1)).toMatchObject({ state: 'SUCCEEDED', videoUrl: expect.stringContaining(`/cdn/videos/${created.id}.mp4`) });
  });

  it('reports Luma\'s failure_reason', async () => {
    fake.behave({ kind: 'fail', message: 'Prompt contains restricted content' });
    const provider = luma(fake);
    const statuses = await pollToEnd(provider, await provider.create(brief(), { signal }));
    expect(statuses).toEqual([{ state: 'FAILED', message: 'Luma could not make the video: Prompt contains restricted content' }]);
  });

  it('needs one of the SDK\'s video models, and a key', () => {
    expect(() => luma(fake, { model: 'photon-1' })).toThrow(/model must be one of ray-2, ray-flash-2/);
    expect(() => luma(fake, { apiKey: '' })).toThrow(/apiKey is required/);
  });
});
