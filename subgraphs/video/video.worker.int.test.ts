import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { MikroORM } from '@mikro-orm/postgresql';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { openDatabase } from '../../platform/db/database.js';
import { JetStreamJobQueue } from '../../platform/jobs/jetstream.js';
import { InProcessLiveBus } from '../../platform/live/in-process.js';
import { createLogger } from '../../platform/log.js';
import { LocalDiskStorage } from '../../platform/storage/local.js';
import { startRunwayFake } from '../../test/fakes/runway.js';
import type { VideoFake } from '../../test/fakes/video-fake.js';
import { migratedSubgraphDatabase } from '../../test/support/database.js';
import { instantProvider } from './fixtures/instant-provider.js';
import { insertVideoJob } from './fixtures/jobs.js';
import { videoMigrations } from './migrations/index.js';
import type { VideoProvider, VideoProviderName } from './providers/provider.js';
import { createRunwayProvider } from './providers/runway.js';
import type { StorySource } from './story-source.js';
import { VideoAttempt, VideoJob, videoEntities } from './video.entities.js';
import { VIDEO_QUEUE } from './video.queue.js';
import { VideoWorker } from './video.worker.js';

/**
 * A video worker that dies while Runway makes the video, on a real PostgreSQL, a real JetStream
 * work queue and the Runway SDK against its fake: the job goes to another worker once the
 * acknowledgement wait runs out, which polls the task the dead one created (Runway makes one
 * video, and bills one), and the job completes once.
 */
const logger = createLogger('silent');
const natsUrl = inject('natsUrl');
const stream = `JOBS_V${randomBytes(4).toString('hex')}`;
let db: Awaited<ReturnType<typeof migratedSubgraphDatabase>>;
let orm: MikroORM;
let storageDir: string;
let runway: VideoFake;

beforeAll(async () => {
  db = await migratedSubgraphDatabase({ name: 'video', entities: videoEntities, migrations: videoMigrations }, logger);
  orm = db.orm;
  storageDir = await mkdtemp(join(tmpdir(), 'video-'));
  runway = await startRunwayFake();
});

afterAll(async () => {
  await db?.close();
  await rm(storageDir, { recursive: true, force: true });
  await runway?.close();
  const nc = await connect({ servers: natsUrl });
  await (await jetstreamManager(nc)).streams.delete(stream).catch(() => false);
  await nc.close();
});

const queue = () => JetStreamJobQueue.connect({ url: natsUrl, stream, subjectPrefix: `${stream.toLowerCase()}.`, logger });
const storage = () => new LocalDiskStorage({ root: storageDir, publicBaseUrl: 'http://127.0.0.1:4000/media/video', secret: randomBytes(32).toString('base64url') });
const stories = { latestNarration: async () => null } as unknown as StorySource;
const realRunway = (options: { taskTimeoutMs?: number; requestTimeoutMs?: number } = {}) =>
  createRunwayProvider({ apiKey: 'test-runway-key', baseUrl: runway.url, model: 'gen4.5', pollIntervalMs: 20, taskTimeoutMs: options.taskTimeoutMs ?? 30_000, requestTimeoutMs: options.requestTimeoutMs ?? 5000, maxRetries: 0 });

/** Runway as seen by a process that froze after creating the task (and then died): it never hears back. */
function frozenAfterCreate(): VideoProvider {
  const real = realRunway();
  return { ...real, name: real.name, pollIntervalMs: real.pollIntervalMs, taskTimeoutMs: real.taskTimeoutMs, create: real.create.bind(real), status: () => new Promise(() => {}), download: real.download.bind(real) };
}

function worker(
  jobs: JetStreamJobQueue,
  runwayProvider: VideoProvider,
  options: { clock?: () => Date; sweepMs?: number; orm?: MikroORM; maxBytes?: number; others?: VideoProvider[] } = {},
) {
  const { maxBytes = 50 * 1024 * 1024, others = [], ...rest } = options;
  return new VideoWorker({
    orm,
    ...rest,
    jobs,
    live: new InProcessLiveBus(),
    storage: storage(),
    stories,
    providers: new Map<VideoProviderName, VideoProvider>([['runway', runwayProvider], ...others.map((p): [VideoProviderName, VideoProvider] => [p.name, p])]),
    concurrency: 1,
    ackWaitMs: 800,
    maxBytes,
    logger,
    onEventsCommitted: () => {},
  });
}

const insertJob = (status: 'QUEUED' | 'COMPLETED' = 'QUEUED', providers: VideoProviderName[] = ['runway']) => insertVideoJob(orm, { status, providers, title: 'Resumed' });

const row = async (id: string) => orm.em.fork().findOneOrFail(VideoJob, { id });
const attempts = async (id: string) => orm.em.fork().find(VideoAttempt, { jobId: id }, { orderBy: { seq: 'asc' } });
const failedEvent = async (jobId: string) =>
  (await orm.em.fork().getConnection().execute<{ payload: unknown }[]>(`select envelope->'payload' as payload from video.outbox where type = 'video.generation.failed' and envelope->'payload'->>'jobId' = ?`, [jobId]))[0]?.payload;
const outbox = async (jobId: string) =>
  (await orm.em.fork().getConnection().execute<{ type: string }[]>(`select type from video.outbox where envelope->'payload'->>'jobId' = ? order by created_at`, [jobId])).map((r) => r.type);

describe('the video worker', () => {
  it('polls the same provider task after the worker running it dies, and completes once', async () => {
    runway.behave({ kind: 'succeed', polls: 3 });
    const creationsBefore = runway.creations;
    const id = await insertJob();
    const doomedJobs = await queue();
    // A process of its own: its database connections die with it.
    const doomedOrm = await openDatabase({ url: db.url, schema: 'video', entities: videoEntities, migrations: videoMigrations, logger });
    await worker(doomedJobs, frozenAfterCreate(), { orm: doomedOrm }).start();
    // start() queued the QUEUED job itself; the doomed worker creates the task and freezes.
    await vi.waitFor(async () => expect((await attempts(id))[0]?.task?.id).toBeTruthy(), { timeout: 10_000, interval: 20 });
    const taskId = (await attempts(id))[0]!.task!.id;
    expect(runway.creations - creationsBefore).toBe(1);
    // The process dies: its connections go, nothing is acknowledged or handed back, its lease is no longer renewed.
    await doomedJobs.close();
    await doomedOrm.close(true);

    const heirJobs = await queue();
    const heirWorker = worker(heirJobs, realRunway());
    await heirWorker.start();
    try {
      await vi.waitFor(async () => expect((await row(id)).status).toBe('COMPLETED'), { timeout: 15_000, interval: 50 });
      // One task at Runway: the heir polled the one the dead worker created.
      expect(runway.creations - creationsBefore).toBe(1);
      const polled = runway.requests.filter((r) => r.method === 'GET' && r.path.includes(taskId));
      expect(polled.length).toBeGreaterThanOrEqual(3);
      const done = await row(id);
      expect(done).toMatchObject({ status: 'COMPLETED', progress: 1, provider: 'runway', runs: 2, videoContentType: 'video/mp4' });
      expect(await attempts(id)).toMatchObject([{ seq: 0, provider: 'runway', status: 'SUCCEEDED', task: { id: taskId } }]);
      expect(await outbox(id)).toEqual(['video.generation.started', 'video.generation.completed']);
      const stored = await storage().head(done.videoKey!);
      expect(stored!.size).toBe(done.sizeBytes);
    } finally {
      await heirWorker.stop();
      await heirJobs.close();
    }
  });

  it('hands a job back when stopped; the next worker polls the same task, whose deadline still counts from its creation', async () => {
    runway.behave({ kind: 'hang' });
    const creationsBefore = runway.creations;
    const id = await insertJob();
    const firstJobs = await queue();
    // Its clock stands still: it never sees the task's time run out, however slow this machine is.
    const frozen = new Date();
    const first = worker(firstJobs, realRunway({ taskTimeoutMs: 1500 }), { clock: () => frozen });
    await first.start();
    await vi.waitFor(async () => expect((await attempts(id))[0]?.task?.id).toBeTruthy(), { timeout: 10_000, interval: 20 });
    const taskId = (await attempts(id))[0]!.task!.id;
    // A graceful stop: the job goes back to the queue at once, its attempt untouched.
    await first.stop();
    await firstJobs.close();
    expect((await row(id)).status).toBe('RUNNING');
    expect(await attempts(id)).toMatchObject([{ status: 'RUNNING', task: { id: taskId } }]);

    // The task's time runs out while nobody works on it.
    const createdAt = (await attempts(id))[0]!.taskCreatedAt!.getTime();
    await vi.waitFor(() => expect(Date.now()).toBeGreaterThan(createdAt + 1500), { timeout: 5000, interval: 50 });
    const pollsBefore = runway.polls;
    const nextJobs = await queue();
    const next = worker(nextJobs, realRunway({ taskTimeoutMs: 1500 }));
    await next.start();
    try {
      await vi.waitFor(async () => expect((await row(id)).status).toBe('FAILED'), { timeout: 15_000, interval: 50 });
      expect(runway.creations - creationsBefore).toBe(1);
      const [attempt] = await attempts(id);
      expect(attempt).toMatchObject({ status: 'TIMED_OUT', errorCode: 'TIMEOUT', task: { id: taskId } });
      // Given up on, and cancelled at Runway.
      expect(runway.tasks.find((t) => t.id === taskId)!.cancelled).toBe(true);
      // The heir asked once and gave up: the deadline counts from the task's creation, not from the takeover.
      expect(runway.polls - pollsBefore).toBe(1);
      expect((await row(id)).error).toMatch(/runway: .*within/);
      expect(await outbox(id)).toEqual(['video.generation.started', 'video.generation.failed']);
    } finally {
      await next.stop();
      await nextJobs.close();
    }
  });

  it('drops a second message for a job a live run holds: no second run, no second task', async () => {
    runway.behave({ kind: 'hang' });
    const creationsBefore = runway.creations;
    const id = await insertJob();
    const aJobs = await queue();
    const a = worker(aJobs, realRunway());
    await a.start();
    const bJobs = await queue();
    const b = worker(bJobs, realRunway());
    await b.start();
    const nc = await connect({ servers: natsUrl });
    try {
      await vi.waitFor(async () => expect((await attempts(id))[0]?.task?.id).toBeTruthy(), { timeout: 10_000, interval: 20 });
      // A copy of the job's message, as a re-queue after JetStream's duplicate window would make.
      await jetstream(nc).publish(`${stream.toLowerCase()}.${VIDEO_QUEUE}`, JSON.stringify({ id, data: null }));
      const jsm = await jetstreamManager(nc);
      // The copy was taken and acknowledged; only the live run's message is still out.
      await vi.waitFor(
        async () => {
          const info = await jsm.consumers.info(stream, VIDEO_QUEUE);
          expect([info.num_pending, info.num_ack_pending]).toEqual([0, 1]);
        },
        { timeout: 10_000, interval: 50 },
      );
      expect((await row(id)).runs).toBe(1);
      expect(runway.creations - creationsBefore).toBe(1);
      // The live run stops; the next one takes over the same task and finishes it.
      const taskId = (await attempts(id))[0]!.task!.id;
      const task = runway.tasks.find((t) => t.id === taskId)!;
      await a.stop();
      task.behaviour = { kind: 'succeed', polls: 0 };
      await vi.waitFor(async () => expect((await row(id)).status).toBe('COMPLETED'), { timeout: 15_000, interval: 50 });
      expect((await row(id)).runs).toBe(2);
      expect(runway.creations - creationsBefore).toBe(1);
      expect(await outbox(id)).toEqual(['video.generation.started', 'video.generation.completed']);
    } finally {
      await nc.close();
      await a.stop();
      await b.stop();
      await aJobs.close();
      await bJobs.close();
    }
  });

  it('queues again a job whose message is missing', async () => {
    runway.behave({ kind: 'succeed', polls: 1 });
    const jobs = await queue();
    const w = worker(jobs, realRunway(), { sweepMs: 200 });
    await w.start();
    try {
      // Committed, but never queued (the process died between the two).
      const id = await insertJob();
      await vi.waitFor(async () => expect((await row(id)).status).toBe('COMPLETED'), { timeout: 15_000, interval: 50 });
    } finally {
      await w.stop();
      await jobs.close();
    }
  });

  it('copies a made video again after its download stalled: the same task, no failure counted, no fallback', async () => {
    runway.behave({ kind: 'succeed', polls: 1 });
    runway.behave({ kind: 'stall-download' });
    const creationsBefore = runway.creations;
    const downloadsBefore = runway.downloads;
    const id = await insertJob();
    const jobs = await queue();
    const w = worker(jobs, realRunway({ requestTimeoutMs: 500 }));
    await w.start();
    try {
      await vi.waitFor(() => expect(runway.downloads - downloadsBefore).toBeGreaterThanOrEqual(1), { timeout: 10_000, interval: 20 });
      // The CDN comes back.
      runway.behave({ kind: 'succeed', polls: 1 });
      await vi.waitFor(async () => expect((await row(id)).status).toBe('COMPLETED'), { timeout: 20_000, interval: 50 });
      expect(await attempts(id)).toMatchObject([{ seq: 0, status: 'SUCCEEDED' }]);
      const done = await row(id);
      expect(done.failures).toBe(0);
      expect(done.runs).toBeGreaterThanOrEqual(2);
      expect(runway.creations - creationsBefore).toBe(1);
      expect(runway.downloads - downloadsBefore).toBeGreaterThanOrEqual(2);
    } finally {
      await w.stop();
      await jobs.close();
    }
  });

  it('does nothing for a job that is already finished', async () => {
    const id = await insertJob('COMPLETED');
    const jobs = await queue();
    const w = worker(jobs, realRunway());
    await w.start();
    try {
      const creationsBefore = runway.creations;
      await jobs.enqueue(VIDEO_QUEUE, { id });
      runway.behave({ kind: 'succeed', polls: 1 });
      // A marker job behind it shows the queue moved past it.
      const marker = await insertJob();
      await jobs.enqueue(VIDEO_QUEUE, { id: marker });
      await vi.waitFor(async () => expect((await row(marker)).status).toBe('COMPLETED'), { timeout: 10_000, interval: 50 });
      expect(await outbox(id)).toEqual([]);
      expect(await attempts(id)).toEqual([]);
      expect((await row(id)).runs).toBe(0);
      expect(runway.creations - creationsBefore).toBe(1);
    } finally {
      await w.stop();
      await jobs.close();
    }
  });
  it('fails the attempt of a video larger than the bytes allowed, and the job when no provider is left', async () => {
    runway.behave({ kind: 'succeed', polls: 1 });
    const creationsBefore = runway.creations;
    const id = await insertJob();
    const jobs = await queue();
    const w = worker(jobs, realRunway(), { maxBytes: 1024 });
    await w.start();
    try {
      await vi.waitFor(async () => expect((await row(id)).status).toBe('FAILED'), { timeout: 15_000, interval: 50 });
      expect(runway.creations - creationsBefore).toBe(1);
      expect(await attempts(id)).toMatchObject([{ seq: 0, provider: 'runway', status: 'FAILED', errorCode: 'TOO_LARGE', error: 'The video is larger than the 1024 bytes allowed' }]);
      const failed = await row(id);
      expect(failed).toMatchObject({ videoKey: null, sizeBytes: null, failures: 0 });
      expect(failed.error).toBe('Every provider failed: runway: The video is larger than the 1024 bytes allowed');
      expect(await outbox(id)).toEqual(['video.generation.started', 'video.generation.failed']);
      expect(await failedEvent(id)).toMatchObject({ jobId: id, error: failed.error, attempts: [{ provider: 'runway', status: 'FAILED' }] });
    } finally {
      await w.stop();
      await jobs.close();
    }
  });

  it('falls back to the next provider after a video too large to keep', async () => {
    runway.behave({ kind: 'succeed', polls: 1 });
    const creationsBefore = runway.creations;
    const local = instantProvider(16);
    const id = await insertJob('QUEUED', ['runway', 'local']);
    const jobs = await queue();
    const w = worker(jobs, realRunway(), { maxBytes: 1024, others: [local] });
    await w.start();
    try {
      await vi.waitFor(async () => expect((await row(id)).status).toBe('COMPLETED'), { timeout: 15_000, interval: 50 });
      expect(runway.creations - creationsBefore).toBe(1);
      expect(local.creations).toBe(1);
      expect(await attempts(id)).toMatchObject([
        { seq: 0, provider: 'runway', status: 'FAILED', errorCode: 'TOO_LARGE' },
        { seq: 1, provider: 'local', status: 'SUCCEEDED' },
      ]);
      const done = await row(id);
      expect(done).toMatchObject({ status: 'COMPLETED', provider: 'local', sizeBytes: 16 });
      expect((await storage().head(done.videoKey!))!.size).toBe(16);
      expect(await outbox(id)).toEqual(['video.generation.started', 'video.generation.completed']);
    } finally {
      await w.stop();
      await jobs.close();
    }
  });

  it('skips a provider the job lists that this process cannot call, to the next one', async () => {
    runway.behave({ kind: 'succeed', polls: 1 });
    const creationsBefore = runway.creations;
    // Luma was enabled when the job was queued; this worker has only Runway.
    const id = await insertJob('QUEUED', ['luma', 'runway']);
    const jobs = await queue();
    const w = worker(jobs, realRunway());
    await w.start();
    try {
      await vi.waitFor(async () => expect((await row(id)).status).toBe('COMPLETED'), { timeout: 15_000, interval: 50 });
      expect(await attempts(id)).toMatchObject([
        { seq: 0, provider: 'luma', status: 'FAILED', errorCode: 'DISABLED', error: 'luma is not enabled any more', task: null },
        { seq: 1, provider: 'runway', status: 'SUCCEEDED' },
      ]);
      expect(runway.creations - creationsBefore).toBe(1);
      expect(await row(id)).toMatchObject({ status: 'COMPLETED', provider: 'runway', failures: 0 });
      expect(await outbox(id)).toEqual(['video.generation.started', 'video.generation.completed']);
    } finally {
      await w.stop();
      await jobs.close();
    }
  });
});
