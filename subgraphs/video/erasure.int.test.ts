import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { erasureStepContract, erasureStepDriver, recordingStorage, type ErasureStepDriver, type RecordingStorage } from '../../platform/erasure/erasure-step.contract.js';
import { InProcessJobQueue } from '../../platform/jobs/in-process.js';
import { InProcessLiveBus } from '../../platform/live/in-process.js';
import { createSubgraphContext } from '../../platform/subgraph/context.js';
import { startRunwayFake } from '../../test/fakes/runway.js';
import type { VideoFake } from '../../test/fakes/video-fake.js';
import { migratedSubgraphDatabase } from '../../test/support/database.js';
import { erasureConsumer } from './erasure.consumer.js';
import { videoErasureSweeper } from './erasure.sweeper.js';
import { instantProvider } from './fixtures/instant-provider.js';
import { insertVideoJob } from './fixtures/jobs.js';
import { videoMigrations } from './migrations/index.js';
import type { VideoProvider, VideoProviderName } from './providers/provider.js';
import { createRunwayProvider } from './providers/runway.js';
import type { StorySource } from './story-source.js';
import { VideoAttempt, videoEntities, type VideoStatus } from './video.entities.js';
import { VIDEO_QUEUE } from './video.queue.js';
import { videoKey } from './video.rules.js';
import { VideoService } from './video.service.js';
import { VideoWorker } from './video.worker.js';

/**
 * Video's step of the user deletion saga on a real PostgreSQL, driven directly: user.deleted and
 * user.erasure.requested handled by the erasure consumer (inbox and outbox included; the
 * contract every step passes is platform/erasure's), the ErasureSweeper run by the test, and
 * video workers on the in-process queue with Runway's SDK against its fake, or a provider whose
 * download the test holds and releases.
 */
const logs: { msg: string; jobId?: string }[] = [];
const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line)) });

let db: Awaited<ReturnType<typeof migratedSubgraphDatabase>>;
/** The store workers and the sweeper use, and what they did to it. */
let store: RecordingStorage;
let driver: ErasureStepDriver;
let runway: VideoFake;

beforeAll(async () => {
  db = await migratedSubgraphDatabase({ name: 'video', entities: videoEntities, migrations: videoMigrations }, logger);
  store = await recordingStorage('video');
  driver = erasureStepDriver({ step: 'video', orm: db.orm, definition: erasureConsumer, logger });
  runway = await startRunwayFake();
});

afterAll(async () => {
  await runway?.close();
  await db?.close();
  await store?.close();
});

const sql = <T = Record<string, any>>(query: string, params: unknown[] = []) => db.orm.em.fork().getConnection().execute<T[]>(query, params);
const eventually = <T>(check: () => Promise<T> | T) => vi.waitFor(check, { timeout: 10_000, interval: 20 });
const stories = { latestNarration: async () => null } as unknown as StorySource;
const realRunway = () => createRunwayProvider({ apiKey: 'test-runway-key', baseUrl: runway.url, model: 'gen4.5', pollIntervalMs: 20, taskTimeoutMs: 30_000, requestTimeoutMs: 5000, maxRetries: 0 });

function workerWith(...providers: VideoProvider[]) {
  const jobs = new InProcessJobQueue(logger);
  const worker = new VideoWorker({
    orm: db.orm,
    jobs,
    live: new InProcessLiveBus(),
    storage: store.storage,
    stories,
    providers: new Map<VideoProviderName, VideoProvider>(providers.map((p) => [p.name, p])),
    concurrency: 1,
    ackWaitMs: 600,
    maxBytes: 1 << 20,
    logger,
    onEventsCommitted: () => {},
  });
  return { jobs, worker };
}

const insertJob = (userId: string, providers: VideoProviderName[] = ['runway'], status: VideoStatus = 'QUEUED') => insertVideoJob(db.orm, { userId, status, providers, title: 'Erased', authorName: 'Someone' });

/** A job as a worker leaves it once it made the video: COMPLETED after one run, its attempt and its stored video. */
async function completedJob(userId: string): Promise<string> {
  const id = await insertJob(userId, ['runway'], 'COMPLETED');
  const key = videoKey(id, 0, 1);
  const stored = await store.storage.put(key, Buffer.alloc(2048, 7), { contentType: 'video/mp4' });
  await sql(`update video.video_job set runs = 1, provider = 'runway', video_key = ?, video_content_type = 'video/mp4', size_bytes = ?, completed_at = now() where id = ?`, [key, stored.size, id]);
  const em = db.orm.em.fork();
  em.create(VideoAttempt, { jobId: id, seq: 0, provider: 'runway', status: 'SUCCEEDED', task: { id: randomUUID() }, progress: 1, resultUrl: 'https://cdn.example.test/v.mp4', error: null, errorCode: null, startedAt: new Date(), taskCreatedAt: new Date(), finishedAt: new Date() });
  await em.flush();
  return id;
}

/** What video holds of a user's jobs: rows, and files. */
async function holdingsOf(userId: string, jobIds: string[]) {
  const [rows] = await sql<{ jobs: number; attempts: number }>(
    `select (select count(*)::int from video.video_job where user_id = ?) as jobs,
            (select count(*)::int from video.video_attempt where job_id in (?)) as attempts`,
    [userId, jobIds.length ? jobIds : [randomUUID()]],
  );
  return { ...rows, files: (await Promise.all(jobIds.map((id) => store.filesUnder(`videos/${id}`)))).flat() };
}

const cleanupOf = (userId: string) =>
  sql<{ kind: string; target: string; provider: string | null; due: boolean }>(
    `select kind, target, provider, due_at <= now() as due from video.erasure_cleanup where user_id = ? order by kind, target`,
    [userId],
  );
const sweeper = () => videoErasureSweeper({ orm: db.orm, storage: store.storage, providers: new Map<VideoProviderName, VideoProvider>([['runway', realRunway()]]), logger });
const stopped = (jobId: string) => logs.some((l) => l.jobId === jobId && l.msg === 'another run of this video took it over, or it was erased; this one stops');

erasureStepContract('video', () => ({
  driver,
  sweeper: sweeper(),
  member: async () => {
    const userId = randomUUID();
    const jobId = await completedJob(userId);
    return { userId, holdings: () => holdingsOf(userId, [jobId]) };
  },
  nothing: { jobs: 0, attempts: 0, files: [] },
}));

describe('video\'s erasure of a deleted account', () => {
  it('deletes the jobs and their attempts in one transaction and reports; the videos go after, and another user keeps theirs', async () => {
    const ada = randomUUID();
    const bo = randomUUID();
    const adaJobs = [await completedJob(ada), await completedJob(ada), await insertJob(ada, ['runway'], 'FAILED')];
    const boJobs = [await completedJob(bo)];
    const before = await holdingsOf(ada, adaJobs);
    expect(before).toMatchObject({ jobs: 3, attempts: 2 });
    expect(before.files).toHaveLength(4);
    const bos = await holdingsOf(bo, boJobs);
    const tasks = (await sql<{ task: { id: string } }>(`select task from video.video_attempt where job_id in (?)`, [adaJobs])).map((r) => r.task.id);
    expect(tasks).toHaveLength(2);

    await driver.deliver(driver.userDeleted(ada));
    expect(await driver.reports(ada)).toEqual([expect.objectContaining({ serviceName: 'video', userId: ada, payload: { userId: ada, service: 'video' } })]);
    // The rows went with the report, in one transaction; the files wait for the sweeper.
    expect(await holdingsOf(ada, adaJobs)).toEqual({ jobs: 0, attempts: 0, files: before.files });
    // Their videos here, and their tasks at Runway (which deletes a finished one, its video with it).
    expect((await cleanupOf(ada)).map((c) => [c.kind, c.target, c.due])).toEqual([
      ...[videoKey(adaJobs[0]!, 0, 1), videoKey(adaJobs[1]!, 0, 1)].sort().map((key) => ['BLOB', key, true]),
      ...[...tasks].sort().map((id) => ['PROVIDER_TASK', id, true]),
    ]);

    expect(await sweeper().sweepDue()).toBe(4);
    expect(runway.requests.filter((r) => r.method === 'DELETE').map((r) => r.path)).toEqual(expect.arrayContaining(tasks.map((id) => `/v1/tasks/${id}`)));
    expect(await holdingsOf(ada, adaJobs)).toEqual({ jobs: 0, attempts: 0, files: [] });
    expect(await cleanupOf(ada)).toEqual([]);
    expect(await holdingsOf(bo, boJobs)).toEqual(bos);
  });

  it('refuses a video asked for with a token still valid', async () => {
    const dee = randomUUID();
    await driver.deliver(driver.userDeleted(dee));
    const source = {
      story: async (storyId: string) => ({ story: { id: storyId, title: 'Late', authorId: dee, content: 'Once upon a time.', genre: null, analysis: null } }),
      authorName: async () => 'Dee',
    } as unknown as StorySource;
    const videos = new VideoService({ stories: source, jobs: new InProcessJobQueue(logger), providers: ['runway'], durationSeconds: 5 });
    const ctx = createSubgraphContext({ serviceName: 'video', em: db.orm.em.fork(), log: logger, caller: { userId: dee, roles: ['USER'] }, correlationId: 'c', onEventsCommitted: () => {} });
    await expect(videos.generate(ctx, { storyId: randomUUID() })).rejects.toMatchObject({ code: 'UNAUTHENTICATED', message: 'This account has been deleted' });
    expect((await holdingsOf(dee, [])).jobs).toBe(0);
  });

  it('stops a job whose video Runway is making: the run ends, the task is cancelled there, nothing is recreated', async () => {
    const eve = randomUUID();
    runway.behave({ kind: 'hang' });
    const creationsBefore = runway.creations;
    const cancellationsBefore = runway.cancellations;
    const { jobs, worker } = workerWith(realRunway());
    await worker.start();
    try {
      const jobId = await insertJob(eve);
      await jobs.enqueue(VIDEO_QUEUE, { id: jobId });
      await eventually(async () => expect((await sql(`select task from video.video_attempt where job_id = ?`, [jobId]))[0]?.task?.id).toBeTruthy());
      const [{ task }] = (await sql<{ task: { id: string } }>(`select task from video.video_attempt where job_id = ?`, [jobId])) as [{ task: { id: string } }];

      await driver.deliver(driver.userDeleted(eve));
      expect(await holdingsOf(eve, [jobId])).toEqual({ jobs: 0, attempts: 0, files: [] });
      expect((await cleanupOf(eve)).filter((c) => c.kind === 'PROVIDER_TASK')).toEqual([{ kind: 'PROVIDER_TASK', target: task.id, provider: 'runway', due: true }]);
      // The run loses its lease at its next renewal, and stops polling.
      await eventually(() => expect(stopped(jobId)).toBe(true));
      await sweeper().sweepDue();
      expect(runway.cancellations - cancellationsBefore).toBe(1);
      expect(runway.tasks.find((t) => t.id === task.id)?.cancelled).toBe(true);
      expect(runway.creations - creationsBefore).toBe(1);
      expect(await holdingsOf(eve, [jobId])).toEqual({ jobs: 0, attempts: 0, files: [] });
      const events = await sql<{ type: string }>(`select type from video.outbox where envelope->'payload'->>'jobId' = ?`, [jobId]);
      expect(events.map((e) => e.type)).toEqual(['video.generation.started']);
      // What is left is the late sweep of the files a run in flight might store; it finds none.
      expect((await cleanupOf(eve)).every((c) => c.kind === 'BLOB' && !c.due)).toBe(true);
      await sql(`update video.erasure_cleanup set due_at = now() where user_id = ?`, [eve]);
      await sweeper().sweepDue();
      expect(await cleanupOf(eve)).toEqual([]);
    } finally {
      await worker.stop();
      runway.behave({ kind: 'succeed' });
    }
  });

  it('deletes the video a run stored after the erasure, when its completion finds the job gone', async () => {
    const fay = randomUUID();
    const provider = instantProvider();
    provider.hold();
    const { jobs, worker } = workerWith(provider);
    await worker.start();
    try {
      const jobId = await insertJob(fay, ['local']);
      await jobs.enqueue(VIDEO_QUEUE, { id: jobId });
      // The provider made the video; its download waits on the test.
      await eventually(() => expect(provider.downloadsWaiting).toBe(1));
      await driver.deliver(driver.userDeleted(fay));
      await sweeper().sweepDue();
      provider.release();
      await eventually(() => expect(stopped(jobId)).toBe(true));
      const key = videoKey(jobId, 0, 1);
      expect(store.ops.filter((op) => op.endsWith(key)).slice(-2)).toEqual([`put ${key}`, `delete ${key}`]);
      expect(await holdingsOf(fay, [jobId])).toEqual({ jobs: 0, attempts: 0, files: [] });
      const events = await sql<{ type: string }>(`select type from video.outbox where envelope->'payload'->>'jobId' = ?`, [jobId]);
      expect(events.map((e) => e.type)).toEqual(['video.generation.started']);
    } finally {
      provider.release();
      await worker.stop();
    }
  });

  it('lets a worker that picks up a job of an erased account do nothing', async () => {
    const gus = randomUUID();
    const hal = randomUUID();
    const provider = instantProvider();
    const { jobs, worker } = workerWith(provider);
    const erased = await insertJob(gus, ['local']);
    await driver.deliver(driver.userDeleted(gus));
    await worker.start();
    try {
      await jobs.enqueue(VIDEO_QUEUE, { id: erased });
      // A job queued behind it completes: the queue went past the erased one.
      const marker = await insertJob(hal, ['local']);
      await jobs.enqueue(VIDEO_QUEUE, { id: marker });
      await eventually(async () => expect((await sql(`select status from video.video_job where id = ?`, [marker]))[0]?.status).toBe('COMPLETED'));
      expect(provider.creations).toBe(1);
      expect(await holdingsOf(gus, [erased])).toEqual({ jobs: 0, attempts: 0, files: [] });
    } finally {
      await worker.stop();
    }
  });
});
