import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeServer, listen } from '../../../platform/http/server.js';
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
    const base = `${fake.url}/fal-ai/pika/requests/${id}`;
    return { id, urls: { status_url: `${base}/status`, response_url: base, cancel_url: `${base}/cancel` } };
  },
  cancelRequest: (fake, handle) => ({ method: 'PUT', path: `/fal-ai/pika/requests/${handle.id}/cancel`, authorization: `Key ${fake.apiKey}` }),
  // fal.ai documents no cancelled state (see the fake): a hung request still says IN_PROGRESS.
  afterCancel: { state: 'RUNNING' },
});

/**
 * Another host, standing in for wherever a bad URL or a redirect would send the adapter: it
 * records what it receives, and answers as fal.ai would (a create queued on `queue`, a request
 * in progress), so only the adapter's own checks keep it from being believed.
 */
async function startForeignHost(queue: () => string) {
  const received: { method: string; path: string; authorization: string | undefined }[] = [];
  const server = createServer((req, res) => {
    received.push({ method: req.method ?? 'GET', path: req.url ?? '/', authorization: req.headers.authorization });
    const id = randomUUID();
    const base = `${queue()}/fal-ai/pika/requests/${id}`;
    const body = req.method === 'POST' ? { request_id: id, status_url: `${base}/status`, response_url: base } : { status: 'IN_PROGRESS' };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  const url = await listen(server, 0, '127.0.0.1');
  return { url, received, close: () => closeServer(server) };
}

describe('Pika on fal.ai\'s queue, on the wire', () => {
  let fake: VideoFake;
  let foreign: Awaited<ReturnType<typeof startForeignHost>>;
  beforeAll(async () => {
    fake = await startFalFake({ apiKey: `fal-${randomUUID()}` });
    foreign = await startForeignHost(() => fake.url);
  });
  afterAll(() => Promise.all([fake.close(), foreign.close()]));
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

  it('sends nothing, and so no key, to a status or response URL on another host', async () => {
    const id = randomUUID();
    const before = foreign.received.length;
    const elsewhere = { id, urls: { status_url: `${foreign.url}/fal-ai/pika/requests/${id}/status`, response_url: `${foreign.url}/fal-ai/pika/requests/${id}` } };
    await expect(pika(fake).status(elsewhere, { signal })).rejects.toMatchObject({ reason: 'INVALID_RESPONSE', message: expect.stringContaining('another host') });
    expect(foreign.received.slice(before)).toEqual([]);
  });

  it('keeps a cancel_url only when it is on the queue\'s host, and still returns the task', async () => {
    const elsewhere = await startFalFake({ apiKey: fake.apiKey, cancelOrigin: foreign.url });
    try {
      const handle = await pika(elsewhere).create(brief(), { signal });
      expect(handle.id).toBe(elsewhere.tasks.at(-1)!.id);
      expect(Object.keys(handle.urls ?? {}).sort()).toEqual(['response_url', 'status_url']);
    } finally {
      await elsewhere.close();
    }
  });

  it('cancels nothing, and sends nothing, for a handle without a cancel_url; never sends the key to a cancel_url on another host', async () => {
    fake.behave({ kind: 'hang' });
    const provider = pika(fake);
    const handle = await provider.create(brief(), { signal });
    const { cancel_url, ...kept } = handle.urls!;
    expect(cancel_url).toBe(`${fake.url}/fal-ai/pika/requests/${handle.id}/cancel`);
    const requests = fake.requests.length;
    const before = { foreign: foreign.received.length, cancellations: fake.cancellations };
    await expect(provider.cancel!({ id: handle.id, urls: kept }, { signal })).resolves.toBeUndefined();
    const elsewhere = { id: handle.id, urls: { ...kept, cancel_url: `${foreign.url}/fal-ai/pika/requests/${handle.id}/cancel` } };
    await expect(provider.cancel!(elsewhere, { signal })).rejects.toMatchObject({ reason: 'INVALID_RESPONSE', message: expect.stringContaining('another host') });
    expect(fake.requests.length).toBe(requests);
    expect(foreign.received.length).toBe(before.foreign);
    expect(fake.cancellations).toBe(before.cancellations);
    fake.behave({ kind: 'succeed' });
  });

  it('follows no redirect: an answer from the host it points to is not taken as fal.ai\'s', async () => {
    fake.behave({ kind: 'succeed' });
    const provider = pika(fake);
    const handle = await provider.create(brief(), { signal });
    const before = foreign.received.length;
    fake.behave({ kind: 'redirect', to: foreign.url });
    const created = await provider.create(brief(), { signal }).catch((e: unknown) => e);
    const polled = await provider.status(handle, { signal }).catch((e: unknown) => e);
    fake.behave({ kind: 'succeed' });
    // What reached the other host, and whether the key went with it.
    expect(foreign.received.slice(before)).toEqual([]);
    expect(created).toMatchObject({ reason: 'INVALID_RESPONSE', message: expect.stringContaining(`redirect (307) to ${foreign.url}`) });
    expect(polled).toMatchObject({ reason: 'INVALID_RESPONSE', message: expect.stringContaining('redirect (307)') });
  });

  it('asks again (UNAVAILABLE) when a COMPLETED request\'s response URL answers 500 with a proxy\'s page, not fal.ai\'s error', async () => {
    fake.behave({ kind: 'succeed', polls: 0 });
    const provider = pika(fake);
    const handle = await provider.create(brief(), { signal });
    for (const status of [500, 501]) {
      fake.behave({ kind: 'proxy-error', on: 'result', status });
      await expect(provider.status(handle, { signal })).rejects.toMatchObject({ reason: 'UNAVAILABLE', message: expect.stringContaining(`${status}`) });
    }
    fake.behave({ kind: 'succeed' });
    expect(await provider.status(handle, { signal })).toMatchObject({ state: 'SUCCEEDED' });
  });

  it('needs a fal.ai endpoint id, and a key', () => {
    expect(() => pika(fake, { model: 'not a model' })).toThrow(/fal\.ai endpoint id/);
    expect(() => pika(fake, { apiKey: '' })).toThrow(/apiKey is required/);
  });
});
