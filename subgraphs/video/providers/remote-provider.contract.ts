/**
 * One suite every remote adapter passes against its fake (runway, luma, pika .int.test.ts call
 * it): the port's promises, driven through the fakes' common controller. Each test file adds
 * the checks of its own wire format.
 */
import ffmpeg from '@ffmpeg-installer/ffmpeg';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { fakeMp4, type VideoFake } from '../../../test/fakes/video-fake.js';
import { VideoProviderError, type ProviderSettings, type TaskHandle, type TaskStatus, type VideoBrief, type VideoProvider } from './provider.js';

export type ProviderFactory = (fake: VideoFake, overrides?: Partial<ProviderSettings> & { apiKey?: string; model?: string }) => VideoProvider;

export interface RemoteProviderCase {
  name: string;
  startFake(): Promise<VideoFake>;
  provider: ProviderFactory;
  /** Whether the provider reports progress while a task runs (Runway does; Luma and fal.ai do not). */
  reportsProgress: boolean;
  /** A handle of a task the fake never made. */
  lostHandle(fake: VideoFake): TaskHandle;
  /** The cancel of `handle` as the provider's wire has it: method, path, and the Authorization header. */
  cancelRequest(fake: VideoFake, handle: TaskHandle): { method: string; path: string; authorization: string };
  /** What a poll of a hung task says once it is cancelled (see the fake): a status, or lost (the provider forgot it). */
  afterCancel: { state: TaskStatus['state']; code?: string } | 'lost';
}

export const SETTINGS: ProviderSettings = { pollIntervalMs: 10, taskTimeoutMs: 10_000, requestTimeoutMs: 2_000, maxRetries: 0 };

export function brief(overrides: Partial<VideoBrief> = {}): VideoBrief {
  return {
    jobId: randomUUID(),
    prompt: 'A lighthouse keeper climbs a hundred steps at night to light the lamp; watercolor, soft light',
    durationSeconds: 5,
    aspectRatio: '16:9',
    style: 'watercolor',
    story: { title: 'The Lighthouse', authorName: 'Ada', summary: null, genre: 'fable', characters: [], emotions: [] },
    narration: null,
    ...overrides,
  };
}

const signal = () => new AbortController().signal;

/** Polls (no pause: the fakes move on at every poll) until the task is done. */
export async function pollToEnd(provider: VideoProvider, handle: TaskHandle): Promise<TaskStatus[]> {
  const statuses: TaskStatus[] = [];
  for (let i = 0; i < 50; i++) {
    const status = await provider.status(handle, { signal: signal() });
    statuses.push(status);
    if (status.state === 'SUCCEEDED' || status.state === 'FAILED') return statuses;
  }
  throw new Error(`The task was still going after 50 polls: ${JSON.stringify(statuses.at(-1))}`);
}

export async function readAll(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

export function describeRemoteProvider(c: RemoteProviderCase): void {
  describe(`${c.name}: the video port against its fake`, () => {
    let fake: VideoFake;
    /** Every VideoProviderError the suite saw, for the last test. */
    const seen: VideoProviderError[] = [];
    const wrongKey = `wrong-${randomUUID()}`;
    const make = (overrides: Partial<ProviderSettings> & { apiKey?: string } = {}) => c.provider(fake, { ...SETTINGS, ...overrides });
    const failureOf = async (promise: Promise<unknown>): Promise<VideoProviderError> => {
      const error = await promise.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(VideoProviderError);
      seen.push(error as VideoProviderError);
      return error as VideoProviderError;
    };
    const succeeded = async (provider: VideoProvider) => {
      fake.behave({ kind: 'succeed', polls: 1 });
      const statuses = await pollToEnd(provider, await provider.create(brief(), { signal: signal() }));
      const last = statuses.at(-1)!;
      if (last.state !== 'SUCCEEDED') throw new Error(`expected SUCCEEDED, got ${JSON.stringify(last)}`);
      return last.videoUrl;
    };

    beforeAll(async () => {
      fake = await c.startFake();
    });
    afterAll(() => fake.close());

    it('creates a task, reports it queued, running and succeeded, and downloads a playable MP4 without sending the key', async () => {
      fake.behave({ kind: 'succeed', queued: 1, polls: 3 });
      const provider = make();
      const before = { creations: fake.creations, polls: fake.polls, downloads: fake.downloads };
      const handle = await provider.create(brief(), { signal: signal() });
      expect(JSON.parse(JSON.stringify(handle))).toEqual(handle); // persisted as JSON on the attempt
      const statuses = await pollToEnd(provider, handle);

      expect(statuses.map((s) => s.state)).toEqual(['QUEUED', 'RUNNING', 'RUNNING', 'RUNNING', 'SUCCEEDED']);
      const progress = statuses.flatMap((s) => (s.state === 'RUNNING' ? [s.progress] : []));
      if (c.reportsProgress) {
        expect(progress.every((p) => p !== null && p > 0 && p < 1)).toBe(true);
        expect(progress).toEqual([...progress].sort((a, b) => a! - b!));
        expect(new Set(progress).size).toBe(3);
      } else {
        expect(progress).toEqual([null, null, null]);
      }
      expect({ creations: fake.creations - before.creations, polls: fake.polls - before.polls }).toEqual({ creations: 1, polls: 5 });

      const { videoUrl } = statuses.at(-1) as { videoUrl: string };
      const video = await provider.download(videoUrl, { signal: signal() });
      expect(video.contentType).toBe('video/mp4');
      const bytes = await readAll(video.body);
      expect(bytes.subarray(4, 8).toString('latin1')).toBe('ftyp');
      expect(bytes.equals(await fakeMp4())).toBe(true);
      const decoded = spawnSync(ffmpeg.path, ['-v', 'error', '-i', 'pipe:0', '-f', 'null', '-'], { input: bytes });
      expect({ status: decoded.status, stderr: decoded.stderr.toString() }).toEqual({ status: 0, stderr: '' });
      expect(fake.downloads - before.downloads).toBe(1);
      const download = fake.requests.filter((r) => r.path.startsWith('/cdn/')).at(-1)!;
      expect(download.headers.authorization).toBeUndefined();
    });

    it('reports a task the provider gave up on as FAILED, with the provider\'s reason', async () => {
      fake.behave({ kind: 'fail', message: 'The storm scene could not be rendered', polls: 1 });
      const provider = make();
      const statuses = await pollToEnd(provider, await provider.create(brief(), { signal: signal() }));
      expect(statuses.map((s) => s.state)).toEqual(['RUNNING', 'FAILED']);
      expect(statuses.at(-1)).toMatchObject({ state: 'FAILED', message: expect.stringContaining('The storm scene could not be rendered') });
    });

    it('is REFUSED when the provider turns the prompt down, and no task is made', async () => {
      fake.behave({ kind: 'refuse', message: 'Prompt flagged by content moderation: violence' });
      const before = fake.creations;
      const error = await failureOf(make().create(brief(), { signal: signal() }));
      expect(error.reason).toBe('REFUSED');
      expect(error.message).toContain('Prompt flagged by content moderation');
      expect(fake.creations).toBe(before);
    });

    it('is THROTTLED when every try is rate limited, after maxRetries retries and without a long wait', async () => {
      fake.behave({ kind: 'succeed' });
      fake.behave({ kind: 'throttle' });
      const posts = () => fake.requests.filter((r) => r.method === 'POST').length;
      const before = posts();
      const started = performance.now();
      const error = await failureOf(make({ maxRetries: 1 }).create(brief(), { signal: signal() }));
      expect(error.reason).toBe('THROTTLED');
      expect(posts() - before).toBe(2);
      expect(performance.now() - started).toBeLessThan(3_000);
    });

    it('creates the task when only the first try is rate limited: the retry goes through, and only it', async () => {
      fake.behave({ kind: 'succeed', polls: 1 });
      fake.behave({ kind: 'throttle', times: 1 });
      const posts = () => fake.requests.filter((r) => r.method === 'POST').length;
      const before = { posts: posts(), creations: fake.creations };
      const provider = make({ maxRetries: 2 });
      const handle = await provider.create(brief(), { signal: signal() });
      expect({ posts: posts() - before.posts, creations: fake.creations - before.creations }).toEqual({ posts: 2, creations: 1 });
      expect((await pollToEnd(provider, handle)).at(-1)!.state).toBe('SUCCEEDED');
    });

    it('waits as Retry-After says before it sends a throttled create again', async () => {
      fake.behave({ kind: 'succeed' });
      fake.behave({ kind: 'throttle', times: 1, retryAfter: 1 });
      const posts = () => fake.requests.filter((r) => r.method === 'POST').length;
      const before = { posts: posts(), creations: fake.creations };
      const started = performance.now();
      await make({ maxRetries: 1 }).create(brief(), { signal: signal() });
      expect(performance.now() - started).toBeGreaterThanOrEqual(950);
      expect({ posts: posts() - before.posts, creations: fake.creations - before.creations }).toEqual({ posts: 2, creations: 1 });
    });

    it('sends a create again when the provider answered 500 (it made nothing), and is UNAVAILABLE when every try did', async () => {
      fake.behave({ kind: 'down' });
      const posts = () => fake.requests.filter((r) => r.method === 'POST').length;
      const before = { posts: posts(), creations: fake.creations };
      const error = await failureOf(make({ maxRetries: 1 }).create(brief(), { signal: signal() }));
      fake.behave({ kind: 'succeed' });
      expect(error.reason).toBe('UNAVAILABLE');
      expect(error.message).toContain('2 attempts');
      expect({ posts: posts() - before.posts, creations: fake.creations - before.creations }).toEqual({ posts: 2, creations: 0 });
    });

    for (const stall of ['stall', 'stall-body'] as const) {
      it(`sends a create once when it gets ${stall === 'stall' ? 'no answer' : 'half an answer'}, retries or not: the task may exist, and a second would be billed`, async () => {
        fake.behave({ kind: 'succeed' });
        fake.behave({ kind: stall });
        const posts = () => fake.requests.filter((r) => r.method === 'POST').length;
        const before = { posts: posts(), creations: fake.creations };
        const error = await failureOf(make({ requestTimeoutMs: 300, maxRetries: 2 }).create(brief(), { signal: signal() }));
        fake.behave({ kind: 'succeed' });
        // stall-body answers after creating the task; stall never gets that far.
        expect({ posts: posts() - before.posts, creations: fake.creations - before.creations }).toEqual({ posts: 1, creations: stall === 'stall' ? 0 : 1 });
        expect(error.reason).toBe('TIMEOUT');
        expect(error.message).toContain('(1 attempt)');
      });
    }

    it('is UNAVAILABLE to create, poll and download while the provider answers 500', async () => {
      const provider = make();
      const videoUrl = await succeeded(provider);
      const handle = await provider.create(brief(), { signal: signal() });
      fake.behave({ kind: 'down' });
      expect((await failureOf(provider.create(brief(), { signal: signal() }))).reason).toBe('UNAVAILABLE');
      expect((await failureOf(provider.status(handle, { signal: signal() }))).reason).toBe('UNAVAILABLE');
      expect((await failureOf(provider.download(videoUrl, { signal: signal() }))).reason).toBe('UNAVAILABLE');
      fake.behave({ kind: 'succeed' });
    });

    for (const stall of ['stall', 'stall-body'] as const) {
      it(`is TIMEOUT within requestTimeoutMs when a create gets ${stall === 'stall' ? 'no answer' : 'half an answer'}`, async () => {
        fake.behave({ kind: 'succeed' });
        fake.behave({ kind: stall });
        const started = performance.now();
        const error = await failureOf(make({ requestTimeoutMs: 300 }).create(brief(), { signal: signal() }));
        const took = performance.now() - started;
        fake.behave({ kind: 'succeed' });
        expect(error.reason).toBe('TIMEOUT');
        expect(error.message).toContain('300 ms');
        expect(took).toBeGreaterThanOrEqual(250);
        expect(took).toBeLessThan(2_000);
      });
    }

    it('is UNAVAILABLE (ask again), not lost, when a poll gets no answer in time', async () => {
      fake.behave({ kind: 'succeed' });
      const provider = make({ requestTimeoutMs: 300 });
      const handle = await provider.create(brief(), { signal: signal() });
      fake.behave({ kind: 'stall' });
      const error = await failureOf(provider.status(handle, { signal: signal() }));
      fake.behave({ kind: 'succeed' });
      expect(error.reason).toBe('UNAVAILABLE');
      expect(error.message).toContain('within 300 ms');
    });

    it('fails the download stream with TIMEOUT when the video stops arriving', async () => {
      const provider = make({ requestTimeoutMs: 300 });
      const videoUrl = await succeeded(provider);
      fake.behave({ kind: 'stall-download' });
      const video = await provider.download(videoUrl, { signal: signal() });
      const started = performance.now();
      const error = await failureOf(readAll(video.body));
      fake.behave({ kind: 'succeed' });
      expect(error.reason).toBe('TIMEOUT');
      expect(performance.now() - started).toBeLessThan(2_000);
    });

    for (const stall of [false, true]) {
      it(`is INVALID_RESPONSE when the video link answers 403${stall ? ' and its error body stalls: read under the deadline' : ''}`, { timeout: 10_000 }, async () => {
        const provider = make({ requestTimeoutMs: 300 });
        const videoUrl = await succeeded(provider);
        fake.behave({ kind: 'deny-download', stall });
        const started = performance.now();
        const error = await failureOf(provider.download(videoUrl, { signal: signal() }));
        fake.behave({ kind: 'succeed' });
        expect(error.reason).toBe('INVALID_RESPONSE');
        expect(error.message).toContain('403');
        if (!stall) expect(error.message).toContain('Request has expired');
        expect(performance.now() - started).toBeLessThan(2_000);
      });
    }

    it('says a task the provider does not know is lost (INVALID_RESPONSE)', async () => {
      fake.behave({ kind: 'succeed' });
      const error = await failureOf(make().status(c.lostHandle(fake), { signal: signal() }));
      expect(error.reason).toBe('INVALID_RESPONSE');
    });

    it('is AUTH when the key is refused, and keeps the key out of the message though the provider echoes it', async () => {
      fake.behave({ kind: 'succeed' });
      const error = await failureOf(make({ apiKey: wrongKey }).create(brief(), { signal: signal() }));
      expect(error.reason).toBe('AUTH');
      expect(error.message).toContain('[redacted]');
      expect(error.message).not.toContain(wrongKey);
    });

    const cancel = (provider: VideoProvider, handle: TaskHandle) => {
      if (!provider.cancel) throw new Error(`${c.name} has no cancel`);
      return provider.cancel(handle, { signal: signal() });
    };

    it('cancels a hung task: one cancel on the wire, with the key; the task then reads as the provider reports it, and a second cancel resolves', async () => {
      fake.behave({ kind: 'hang' });
      const provider = make();
      const handle = await provider.create(brief(), { signal: signal() });
      expect((await provider.status(handle, { signal: signal() })).state).toBe('RUNNING');
      const before = { cancellations: fake.cancellations, requests: fake.requests.length };
      await expect(cancel(provider, handle)).resolves.toBeUndefined();
      expect(fake.cancellations - before.cancellations).toBe(1);
      const sent = fake.requests.slice(before.requests).map((r) => ({ method: r.method, path: r.path, authorization: r.headers.authorization }));
      expect(sent).toEqual([c.cancelRequest(fake, handle)]);

      if (c.afterCancel === 'lost') expect((await failureOf(provider.status(handle, { signal: signal() }))).reason).toBe('INVALID_RESPONSE');
      else expect(await provider.status(handle, { signal: signal() })).toMatchObject(c.afterCancel);
      await expect(cancel(provider, handle)).resolves.toBeUndefined();
      expect(fake.cancellations - before.cancellations).toBe(1);
      fake.behave({ kind: 'succeed' });
    });

    it('resolves a cancel of a task that already finished, or that the provider does not know, and stops nothing', async () => {
      fake.behave({ kind: 'succeed', polls: 1 });
      const provider = make();
      const finished = await provider.create(brief(), { signal: signal() });
      expect((await pollToEnd(provider, finished)).at(-1)!.state).toBe('SUCCEEDED');
      const before = fake.cancellations;
      await expect(cancel(provider, finished)).resolves.toBeUndefined();
      await expect(cancel(provider, c.lostHandle(fake))).resolves.toBeUndefined();
      expect(fake.cancellations).toBe(before);
    });

    it('is UNAVAILABLE when a cancel gets a 500, and AUTH (the key redacted) when the key is refused', async () => {
      fake.behave({ kind: 'hang' });
      const provider = make();
      const handle = await provider.create(brief(), { signal: signal() });
      const before = fake.cancellations;
      fake.behave({ kind: 'down' });
      const down = await failureOf(cancel(provider, handle));
      fake.behave({ kind: 'succeed' });
      expect(down.reason).toBe('UNAVAILABLE');
      const refused = await failureOf(cancel(make({ apiKey: wrongKey }), handle));
      expect(refused.reason).toBe('AUTH');
      expect(refused.message).not.toContain(wrongKey);
      expect(fake.cancellations).toBe(before);
    });

    it('gives up a call at once with the caller\'s reason when its signal aborts', async () => {
      fake.behave({ kind: 'stall' });
      const controller = new AbortController();
      const requests = fake.requests.length;
      const call = make({ requestTimeoutMs: 30_000 }).create(brief(), { signal: controller.signal });
      await vi.waitFor(() => expect(fake.requests.length).toBe(requests + 1), { timeout: 5_000, interval: 10 });
      const reason = new Error('shutting down');
      controller.abort(reason);
      await expect(call).rejects.toBe(reason);
      fake.behave({ kind: 'succeed' });
    });

    it('never puts a key in an error message', () => {
      expect(new Set(seen.map((e) => e.reason))).toEqual(new Set(['REFUSED', 'THROTTLED', 'UNAVAILABLE', 'TIMEOUT', 'INVALID_RESPONSE', 'AUTH']));
      for (const error of seen) {
        expect(error.message).not.toContain(fake.apiKey);
        expect(error.message).not.toContain(wrongKey);
      }
    });
  });
}
