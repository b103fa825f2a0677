import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFalFake } from '../../../test/fakes/fal.js';
import type { VideoFake } from '../../../test/fakes/video-fake.js';
import { createPikaProvider, PIKA_DEFAULT_MODEL } from './pika.js';
import { brief, describeRemoteProvider, pollToEnd, SETTINGS, type ProviderFactory } from './remote-provider.contract.js';

const pika: ProviderFactory = (fake, overrides = {}) => createPikaProvider({ ...SETTINGS, apiKey: fake.apiKey, queueUrl: fake.url, model: PIKA_DEFAULT_MODEL, ...overrides });

describeRemoteProvider({
  name: 'Pika (fal.ai)',
  startFake: () => startFalFake(),
  provider: pika,
  reportsProgress: false,
  lostHandle: (fake) => {
    const id = randomUUID();
    return { id, urls: { status_url: `${fake.url}/fal-ai/pika/requests/${id}/status`, response_url: `${fake.url}/fal-ai/pika/requests/${id}` } };
  },
});

describe('Pika on fal.ai\'s queue, on the wire', () => {
  let fake: VideoFake;
  beforeAll(async () => {
    fake = await startFalFake({ apiKey: `fal-${randomUUID()}` });
  });
  afterAll(() => fake.close());
  const signal = new AbortController().signal;
  const lastPost = () => fake.requests.filter((r) => r.method === 'POST').at(-1)!;

  it('submits to /{model} with "Key", keeps the URLs fal.ai returns, and polls and reads exactly those', async () => {
    fake.behave({ kind: 'succeed', polls: 1 });
    const provider = pika(fake);
    const told = brief();
    const requests = fake.requests.length;
    const handle = await provider.create(told, { signal });
    const post = lastPost();
    expect(post).toMatchObject({ method: 'POST', path: '/fal-ai/pika/v2.2/text-to-video' });
    expect(post.headers.authorization).toBe(`Key ${fake.apiKey}`);
    expect(post.headers['content-type']).toMatch(/^application\/json/);
    expect(post.body).toEqual({ prompt: told.prompt, aspect_ratio: '16:9', duration: '5', resolution: '720p' });
    const id = fake.tasks.at(-1)!.id;
    // The status and response URLs drop the model's subpath: built from the model id, they would be wrong.
    expect(handle).toEqual({
      id,
      urls: {
        status_url: `${fake.url}/fal-ai/pika/requests/${id}/status`,
        response_url: `${fake.url}/fal-ai/pika/requests/${id}`,
        cancel_url: `${fake.url}/fal-ai/pika/requests/${id}/cancel`,
      },
    });

    const statuses = await pollToEnd(provider, handle);
    expect(statuses.map((s) => s.state)).toEqual(['RUNNING', 'SUCCEEDED']);
    const calls = fake.requests.slice(requests + 1);
    expect(calls.map((r) => `${r.method} ${r.path}`)).toEqual([
      `GET /fal-ai/pika/requests/${id}/status`,
      `GET /fal-ai/pika/requests/${id}/status`,
      `GET /fal-ai/pika/requests/${id}`,
    ]);
    expect(calls.every((r) => r.headers.authorization === `Key ${fake.apiKey}`)).toBe(true);
  });

  it('asks for the aspect ratio as is and for 5 or 10 seconds, as strings', async () => {
    fake.behave({ kind: 'succeed' });
    const asked = async (durationSeconds: number, aspectRatio: '16:9' | '9:16' | '1:1') => {
      await pika(fake).create(brief({ durationSeconds, aspectRatio }), { signal });
      const { aspect_ratio, duration } = lastPost().body as Record<string, string>;
      return [aspect_ratio, duration];
    };
    expect(await asked(7, '1:1')).toEqual(['1:1', '5']);
    expect(await asked(7.5, '9:16')).toEqual(['9:16', '10']);
    expect(await asked(20, '16:9')).toEqual(['16:9', '10']);
  });

  it('reports a COMPLETED request whose response is a model error as FAILED, with its type', async () => {
    fake.behave({ kind: 'fail', message: 'The prompt was flagged by the content checker', code: 'content_policy_violation' });
    const provider = pika(fake);
    const statuses = await pollToEnd(provider, await provider.create(brief(), { signal }));
    expect(statuses).toEqual([{ state: 'FAILED', message: 'Pika (fal.ai) could not make the video: The prompt was flagged by the content checker', code: 'content_policy_violation' }]);
  });

  it('does not send the key to a status URL on another host', async () => {
    const requests = fake.requests.length;
    const id = randomUUID();
    const elsewhere = { id, urls: { status_url: `http://127.0.0.2:9/fal-ai/pika/requests/${id}/status`, response_url: `http://127.0.0.2:9/fal-ai/pika/requests/${id}` } };
    await expect(pika(fake).status(elsewhere, { signal })).rejects.toMatchObject({ reason: 'INVALID_RESPONSE', message: expect.stringContaining('another host') });
    expect(fake.requests.length).toBe(requests);
  });

  it('needs a fal.ai endpoint id, and a key', () => {
    expect(() => pika(fake, { model: 'not a model' })).toThrow(/fal\.ai endpoint id/);
    expect(() => pika(fake, { apiKey: '' })).toThrow(/apiKey is required/);
  });
});
