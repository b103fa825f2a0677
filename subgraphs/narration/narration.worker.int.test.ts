import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { MikroORM } from '@mikro-orm/postgresql';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { migrate, openDatabase } from '../../platform/db/database.js';
import { JetStreamJobQueue } from '../../platform/jobs/jetstream.js';
import { InProcessLiveBus } from '../../platform/live/in-process.js';
import { createLogger } from '../../platform/log.js';
import { LocalDiskStorage } from '../../platform/storage/local.js';
import { createTestDatabase } from '../../test/support/database.js';
import { narrationMigrations } from './migrations/index.js';
import { NarrationJob, narrationEntities } from './narration.entities.js';
import { NARRATION_QUEUE } from './narration.service.js';
import { NarrationWorker } from './narration.worker.js';
import { LocalSpeechSynthesizer } from './providers/local-speech.js';
import type { NarrationVoice, SpeechSynthesizer } from './providers/speech.js';
import type { StoryReader } from './story-reader.js';

/**
 * A narration worker that dies mid-job, on a real PostgreSQL and a real JetStream work queue:
 * its job goes to another worker once the acknowledgement wait runs out, which continues from
 * the parts already stored, and the job completes once.
 */
const logger = createLogger('silent');
const natsUrl = inject('natsUrl');
const stream = `JOBS_N${randomBytes(4).toString('hex')}`;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let orm: MikroORM;
let storageDir: string;

beforeAll(async () => {
  db = await createTestDatabase();
  orm = await openDatabase({ url: db.url, schema: 'narration', entities: narrationEntities, migrations: narrationMigrations, logger });
  await migrate(orm);
  storageDir = await mkdtemp(join(tmpdir(), 'narration-'));
});

afterAll(async () => {
  await orm?.close();
  await db?.drop();
  await rm(storageDir, { recursive: true, force: true });
  const nc = await connect({ servers: natsUrl });
  await (await jetstreamManager(nc)).streams.delete(stream).catch(() => false);
  await nc.close();
});

const queue = () => JetStreamJobQueue.connect({ url: natsUrl, stream, subjectPrefix: `${stream.toLowerCase()}.`, logger });
const storage = () => new LocalDiskStorage({ root: storageDir, publicBaseUrl: 'http://127.0.0.1:4000/media/narration', secret: randomBytes(32).toString('base64url') });
const STORY = { id: randomUUID(), title: 'Three parts', authorId: randomUUID(), content: 'The first part is read here. '.repeat(4) + '\n\n' + 'The second part follows it. '.repeat(4) + '\n\n' + 'The third part ends the tale. '.repeat(4) };
const stories = { read: async () => ({ story: STORY }) } as unknown as StoryReader;

/** Local speech in parts of at most 130 characters, counting its calls; `hangFrom` makes call n onwards never answer (a process that froze, then died). */
function speech(hangFrom = Infinity) {
  const local = new LocalSpeechSynthesizer({ maxChars: 130 });
  let calls = 0;
  const synth: SpeechSynthesizer = {
    name: 'test',
    maxChars: 130,
    stockVoices: local.stockVoices,
    synthesize: (text: string, voice: NarrationVoice) => (++calls >= hangFrom ? new Promise(() => {}) : local.synthesize(text, voice)),
  };
  return { synth, calls: () => calls };
}

function worker(jobs: JetStreamJobQueue, synth: SpeechSynthesizer) {
  return new NarrationWorker({ orm, jobs, live: new InProcessLiveBus(), storage: storage(), stories, stockSpeech: synth, clonedSpeech: synth, concurrency: 1, ackWaitMs: 800, logger, onEventsCommitted: () => {} });
}

const row = async (id: string) => orm.em.fork().findOneOrFail(NarrationJob, { id });
const outbox = async (jobId: string) =>
  (await orm.em.fork().getConnection().execute<{ type: string }[]>(`select type from narration.outbox where envelope->'payload'->>'jobId' = ? order by created_at`, [jobId])).map((r) => r.type);

describe('the narration worker', () => {
  it('completes once, continuing from the stored parts, when the worker running the job dies', async () => {
    const id = randomUUID();
    await orm.em.fork().getConnection().execute(
      `insert into narration.narration_job (id, user_id, story_id, voice_kind, stock_voice, status, created_at) values (?, ?, ?, 'STOCK', 'alloy', 'QUEUED', now())`,
      [id, STORY.authorId, STORY.id],
    );
    const doomedJobs = await queue();
    const doomed = speech(2);
    await worker(doomedJobs, doomed.synth).start();
    // start() queued the QUEUED job itself.
    await vi.waitFor(async () => expect((await row(id)).partsDone).toBe(1), { timeout: 10_000, interval: 20 });
    // The second part is asked for right after the first is stored: it hangs there.
    await vi.waitFor(() => expect(doomed.calls()).toBe(2), { timeout: 10_000, interval: 20 });
    // The process dies: its connection goes, nothing is acknowledged or handed back.
    await doomedJobs.close();

    const heirJobs = await queue();
    const heir = speech();
    const heirWorker = worker(heirJobs, heir.synth);
    await heirWorker.start();
    try {
      await vi.waitFor(async () => expect((await row(id)).status).toBe('COMPLETED'), { timeout: 15_000, interval: 50 });
      const done = await row(id);
      expect(done).toMatchObject({ partsTotal: 3, partsDone: 3, progress: 1, attempts: 2 });
      // The heir read parts 2 and 3 (the first was stored), and no part twice.
      expect(heir.calls()).toBe(2);
      expect(await outbox(id)).toEqual(['narration.generation.started', 'narration.generation.completed']);
      const audio = await storage().head(done.audioKey!);
      expect(audio).toMatchObject({ contentType: 'audio/wav' });
      expect(audio!.size).toBeGreaterThan(44);
    } finally {
      await heirWorker.stop();
      await heirJobs.close();
    }
  });

  it('does nothing for a job that is already finished', async () => {
    const id = randomUUID();
    await orm.em.fork().getConnection().execute(
      `insert into narration.narration_job (id, user_id, story_id, voice_kind, stock_voice, status, progress, created_at) values (?, ?, ?, 'STOCK', 'alloy', 'COMPLETED', 1, now())`,
      [id, STORY.authorId, STORY.id],
    );
    const jobs = await queue();
    const counted = speech();
    const w = worker(jobs, counted.synth);
    await w.start();
    try {
      await jobs.enqueue(NARRATION_QUEUE, { id });
      // A marker job behind it shows the queue moved past it.
      const marker = randomUUID();
      await orm.em.fork().getConnection().execute(
        `insert into narration.narration_job (id, user_id, story_id, voice_kind, stock_voice, status, created_at) values (?, ?, ?, 'STOCK', 'alloy', 'QUEUED', now())`,
        [marker, STORY.authorId, STORY.id],
      );
      await jobs.enqueue(NARRATION_QUEUE, { id: marker });
      await vi.waitFor(async () => expect((await row(marker)).status).toBe('COMPLETED'), { timeout: 10_000, interval: 50 });
      expect(await outbox(id)).toEqual([]);
      expect(counted.calls()).toBe(3);
    } finally {
      await w.stop();
      await jobs.close();
    }
  });
});
