import { randomBytes, randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { erasureStepContract, erasureStepDriver, recordingStorage, type ErasureStepDriver, type RecordingStorage } from '../../platform/erasure/erasure-step.contract.js';
import { InProcessJobQueue } from '../../platform/jobs/in-process.js';
import { InProcessLiveBus } from '../../platform/live/in-process.js';
import { createSubgraphContext, type SubgraphContext } from '../../platform/subgraph/context.js';
import { startFakeElevenLabs, type FakeElevenLabs } from '../../test/fakes/elevenlabs.js';
import { migratedSubgraphDatabase } from '../../test/support/database.js';
import { erasureConsumer } from './erasure.consumer.js';
import { narrationErasureSweeper } from './erasure.sweeper.js';
import { narrationMigrations } from './migrations/index.js';
import { narrationEntities } from './narration.entities.js';
import { partKey } from './narration.rules.js';
import { NarrationService } from './narration.service.js';
import { NarrationWorker } from './narration.worker.js';
import { ElevenLabsVoiceCloner } from './providers/elevenlabs-cloner.js';
import { LocalVoiceCloner } from './providers/local-cloner.js';
import { LocalSpeechSynthesizer } from './providers/local-speech.js';
import type { NarrationVoice, SpeechSynthesizer, VoiceCloner } from './providers/speech.js';
import type { StoryReader } from './story-reader.js';
import { VoiceService } from './voice.service.js';

/**
 * Narration's step of the user deletion saga on a real PostgreSQL, driven directly:
 * user.deleted and user.erasure.requested handled by the erasure consumer (inbox and outbox
 * included; the contract every step passes is platform/erasure's), the ErasureSweeper run by
 * the test, a narration worker on the in-process queue whose speech the test holds and
 * releases, and the ElevenLabs cloner against its fake.
 */
const logs: { msg: string; jobId?: string }[] = [];
const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line)) });

let db: Awaited<ReturnType<typeof migratedSubgraphDatabase>>;
/** The store the worker and the sweeper use, and what they did to it. */
let store: RecordingStorage;
let driver: ErasureStepDriver;
let jobs: InProcessJobQueue;
let worker: NarrationWorker;
let eleven: FakeElevenLabs;
const speech = gatedSpeech();
/** Stories the worker read, by id: a job it skipped reads none. */
const storiesRead: string[] = [];

const STORY = ['The first part is read here. '.repeat(4), 'The second part follows it. '.repeat(4), 'The third part ends the tale. '.repeat(4)].join('\n\n');
const stories = {
  read: async (storyId: string, caller: { userId: string | null }) => {
    storiesRead.push(storyId);
    return { story: { id: storyId, title: 'Three parts', authorId: caller.userId, content: STORY } };
  },
} as unknown as StoryReader;

beforeAll(async () => {
  db = await migratedSubgraphDatabase({ name: 'narration', entities: narrationEntities, migrations: narrationMigrations }, logger);
  store = await recordingStorage('narration');
  driver = erasureStepDriver({ step: 'narration', orm: db.orm, definition: erasureConsumer, logger });
  jobs = new InProcessJobQueue(logger);
  worker = new NarrationWorker({ orm: db.orm, jobs, live: new InProcessLiveBus(), storage: store.storage, stories, stockSpeech: speech.synth, clonedSpeech: speech.synth, concurrency: 1, ackWaitMs: 30_000, logger, onEventsCommitted: () => {} });
  await worker.start();
  eleven = await startFakeElevenLabs();
});

afterAll(async () => {
  speech.release();
  await worker?.stop();
  await eleven?.close();
  await db?.close();
  await store?.close();
});

/** Local speech in parts of at most 130 characters; from call `holdFrom(n)` on, each call waits for `release()`. */
function gatedSpeech() {
  const local = new LocalSpeechSynthesizer({ maxChars: 130 });
  let calls = 0;
  let holdFrom = Infinity;
  const waiting: (() => void)[] = [];
  const synth: SpeechSynthesizer = {
    name: 'test',
    maxChars: 130,
    stockVoices: local.stockVoices,
    async synthesize(text: string, voice: NarrationVoice) {
      if (++calls >= holdFrom) await new Promise<void>((resolve) => waiting.push(resolve));
      return local.synthesize(text, voice);
    },
  };
  return {
    synth,
    /** Holds the `n`th call from now, and every one after it. */
    hold: (n: number) => void (holdFrom = calls + n),
    waiting: () => waiting.length,
    release() {
      holdFrom = Infinity;
      for (const resolve of waiting.splice(0)) resolve();
    },
  };
}

/** The keys a completed narration's erasure deletes: its three parts, and its run's audio in either format. */
const NARRATION_KEYS = 5;

const sql = <T = Record<string, any>>(query: string, params: unknown[] = []) => db.orm.em.fork().getConnection().execute<T[]>(query, params);
const eventually = <T>(check: () => Promise<T> | T) => vi.waitFor(check, { timeout: 10_000, interval: 20 });

const ctxOf = (userId: string): SubgraphContext =>
  createSubgraphContext({ serviceName: 'narration', em: db.orm.em.fork(), log: logger, caller: { userId, roles: ['USER'] }, correlationId: `corr-${userId}`, onEventsCommitted: () => {} });
const voicesWith = (cloner: VoiceCloner) =>
  new VoiceService({ storage: store.storage, cloner, secret: randomBytes(32).toString('base64url'), uploadBaseUrl: () => 'http://127.0.0.1:4000/media/narration/uploads/', maxSampleBytes: 1 << 20, logger });
const narrations = () => new NarrationService({ stories, jobs, stockSpeech: speech.synth });
const sweeperWith = (cloner: VoiceCloner) => narrationErasureSweeper({ orm: db.orm, storage: store.storage, cloner, logger });

/** A sample uploaded as the PUT of its link does it: the audio under a key of its own, then the row claimed. */
async function uploadSample(voices: VoiceService, userId: string, label: string): Promise<void> {
  const { sample } = await voices.createSampleUpload(ctxOf(userId), { kind: 'EMOTION', label, contentType: 'audio/wav' });
  const key = `${sample.storageKey}/${randomUUID()}`;
  const audio = (await new LocalSpeechSynthesizer().synthesize(`Sample ${label} of ${userId}.`, { kind: 'STOCK', stockVoice: 'alloy' })).audio;
  const stored = await store.storage.put(key, audio, { contentType: 'audio/wav' });
  await sql(`update narration.voice_sample set uploaded_at = now(), size_bytes = ?, storage_key = ? where id = ?`, [stored.size, key, sample.id]);
}

async function narrate(userId: string): Promise<string> {
  const { job } = await narrations().narrate(ctxOf(userId), { storyId: randomUUID(), voice: 'STOCK', stockVoice: 'alloy' });
  return job.id;
}

const statusOf = async (jobId: string) => (await sql<{ status: string }>(`select status from narration.narration_job where id = ?`, [jobId]))[0]?.status ?? null;

/** A member with five samples, a cloned voice and a completed narration. */
async function member(cloner: VoiceCloner = new LocalVoiceCloner()): Promise<{ userId: string; jobId: string }> {
  const userId = randomUUID();
  const voices = voicesWith(cloner);
  for (const label of ['joy', 'anger', 'whisper', 'laugh', 'sigh']) await uploadSample(voices, userId, label);
  await voices.clone(ctxOf(userId));
  const jobId = await narrate(userId);
  await eventually(async () => expect(await statusOf(jobId)).toBe('COMPLETED'));
  return { userId, jobId };
}

/** What narration holds of a user: rows per table, and files. */
async function holdingsOf(userId: string, jobIds: string[]) {
  const [rows] = await sql<{ voices: number; samples: number; jobs: number }>(
    `select (select count(*)::int from narration.voice where user_id = ?) as voices,
            (select count(*)::int from narration.voice_sample where user_id = ?) as samples,
            (select count(*)::int from narration.narration_job where user_id = ?) as jobs`,
    [userId, userId, userId],
  );
  const files = [...(await store.filesUnder(`voice-samples/${userId}`)), ...(await Promise.all(jobIds.map((id) => store.filesUnder(`narrations/${id}`)))).flat()];
  return { ...rows, files };
}

const cleanupOf = (userId: string) => sql<{ kind: string; target: string; attempts: number; last_error: string | null; due: boolean }>(
  `select kind, target, attempts, last_error, due_at <= now() as due from narration.erasure_cleanup where user_id = ? order by kind, target`,
  [userId],
);

erasureStepContract('narration', () => ({
  driver,
  sweeper: sweeperWith(new LocalVoiceCloner()),
  member: async () => {
    const { userId, jobId } = await member();
    return { userId, holdings: () => holdingsOf(userId, [jobId]) };
  },
  nothing: { voices: 0, samples: 0, jobs: 0, files: [] },
}));

describe('narration\'s erasure of a deleted account', () => {
  it('deletes the samples, voice and narrations in one transaction and reports; the files go after, and another user keeps everything', async () => {
    const ada = await member();
    const bo = await member();
    const before = await holdingsOf(ada.userId, [ada.jobId]);
    expect(before).toMatchObject({ voices: 1, samples: 5, jobs: 1 });
    // Each sample's audio and its sidecar; the narration's audio (its parts went when it completed).
    expect(before.files.filter((f) => f.startsWith('narrations/'))).toEqual(expect.arrayContaining([`narrations/${ada.jobId}/narration-1.wav`]));
    const bos = await holdingsOf(bo.userId, [bo.jobId]);

    await driver.deliver(driver.userDeleted(ada.userId));
    // The rows went with the report, in one transaction; the files wait for the sweeper.
    expect(await driver.reports(ada.userId)).toEqual([expect.objectContaining({ serviceName: 'narration', userId: ada.userId, payload: { userId: ada.userId, service: 'narration' } })]);
    expect(await holdingsOf(ada.userId, [ada.jobId])).toEqual({ voices: 0, samples: 0, jobs: 0, files: before.files });
    expect((await cleanupOf(ada.userId)).map((c) => c.kind)).toEqual([...Array(5 + NARRATION_KEYS).fill('BLOB'), 'PROVIDER_VOICE']);

    expect(await sweeperWith(new LocalVoiceCloner()).sweepDue()).toBe(5 + NARRATION_KEYS + 1);
    expect(await holdingsOf(ada.userId, [ada.jobId])).toEqual({ voices: 0, samples: 0, jobs: 0, files: [] });
    expect(await cleanupOf(ada.userId)).toEqual([]);
    expect(await holdingsOf(bo.userId, [bo.jobId])).toEqual(bos);
  });

  it('refuses a sample, a clone or a narration asked for with a token still valid', async () => {
    const dee = randomUUID();
    await driver.deliver(driver.userDeleted(dee));
    const voices = voicesWith(new LocalVoiceCloner());
    const deleted = { code: 'UNAUTHENTICATED', message: 'This account has been deleted' };
    await expect(voices.createSampleUpload(ctxOf(dee), { kind: 'SOUND', label: 'late', contentType: 'audio/wav' })).rejects.toMatchObject(deleted);
    await expect(voices.clone(ctxOf(dee))).rejects.toMatchObject(deleted);
    await expect(narrate(dee)).rejects.toMatchObject(deleted);
    expect(await holdingsOf(dee, [])).toEqual({ voices: 0, samples: 0, jobs: 0, files: [] });
  });

  it('stops a narration under way without recreating anything: the part stored after the erasure is deleted', async () => {
    const eve = randomUUID();
    // The first part is read; the second waits on the test.
    speech.hold(2);
    const jobId = await narrate(eve);
    await eventually(async () => {
      expect(speech.waiting()).toBe(1);
      expect((await sql(`select parts_done from narration.narration_job where id = ?`, [jobId]))[0]).toEqual({ parts_done: 1 });
    });
    await driver.deliver(driver.userDeleted(eve));
    expect(await statusOf(jobId)).toBeNull();
    // The job was open: its files are deleted now, and once more later.
    const sweeper = sweeperWith(new LocalVoiceCloner());
    await sweeper.sweepDue();
    expect(await store.filesUnder(`narrations/${jobId}`)).toEqual([]);
    expect((await cleanupOf(eve)).every((c) => c.kind === 'BLOB' && !c.due)).toBe(true);

    speech.release();
    await eventually(() => expect(logs.some((l) => l.jobId === jobId && l.msg === 'the narration was erased with its owner\'s account; this run stops')).toBe(true));
    // The sweeper deleted the second part before it existed; the run stored it after, found the
    // job gone at its commit, and deleted what it stored.
    const second = partKey(jobId, 1);
    expect(store.ops.filter((op) => op.endsWith(second))).toEqual([`delete ${second}`, `put ${second}`, `delete ${second}`]);
    expect(await store.filesUnder(`narrations/${jobId}`)).toEqual([]);
    expect(await statusOf(jobId)).toBeNull();
    const events = await sql<{ type: string }>(`select type from narration.outbox where envelope->'payload'->>'jobId' = ?`, [jobId]);
    expect(events.map((e) => e.type)).toEqual(['narration.generation.started']);

    // The late sweep finds nothing more to delete, and ends the erasure's work.
    await sql(`update narration.erasure_cleanup set due_at = now() where user_id = ?`, [eve]);
    expect(await sweeper.sweepDue()).toBeGreaterThan(0);
    expect(await cleanupOf(eve)).toEqual([]);
  });

  it('lets a worker that picks up a job of an erased account do nothing', async () => {
    const fay = randomUUID();
    const gus = randomUUID();
    // The one worker slot is taken by Gus's narration, so Fay's waits in the queue.
    speech.hold(1);
    const blocker = await narrate(gus);
    await eventually(() => expect(speech.waiting()).toBe(1));
    const jobId = await narrate(fay);
    const storyId = (await sql<{ story_id: string }>(`select story_id from narration.narration_job where id = ?`, [jobId]))[0]!.story_id;
    await driver.deliver(driver.userDeleted(fay));
    speech.release();
    await eventually(async () => expect(await statusOf(blocker)).toBe('COMPLETED'));
    // A job queued behind Fay's completes: the queue went past hers.
    const marker = await narrate(gus);
    await eventually(async () => expect(await statusOf(marker)).toBe('COMPLETED'));
    // Read once, by narrateStory; never by a worker.
    expect(storiesRead.filter((id) => id === storyId)).toHaveLength(1);
    expect(await statusOf(jobId)).toBeNull();
    expect(await store.filesUnder(`narrations/${jobId}`)).toEqual([]);
  });
});

describe('a voice cloned at ElevenLabs, when its account is deleted', () => {
  const cloner = () => new ElevenLabsVoiceCloner({ apiKey: eleven.apiKey, baseUrl: eleven.url, timeoutMs: 5_000, maxRetries: 0 });
  const deletes = () => eleven.requests.filter((r) => r.method === 'DELETE').map((r) => r.path);

  it('is deleted there by the sweeper, again until ElevenLabs answers', async () => {
    const hal = await member(cloner());
    const voiceId = (await sql<{ provider_voice_id: string }>(`select provider_voice_id from narration.voice where user_id = ?`, [hal.userId]))[0]!.provider_voice_id;
    expect(eleven.voices.has(voiceId)).toBe(true);
    const sweeper = sweeperWith(cloner());
    const deletesBefore = deletes().length;

    await driver.deliver(driver.userDeleted(hal.userId));
    eleven.fail(503);
    // The files go; the voice waits for its next try, with the reason.
    expect(await sweeper.sweepDue()).toBe(5 + NARRATION_KEYS);
    expect(await cleanupOf(hal.userId)).toEqual([{ kind: 'PROVIDER_VOICE', target: voiceId, attempts: 1, last_error: expect.stringContaining('503'), due: false }]);
    expect(eleven.voices.has(voiceId)).toBe(true);

    await sql(`update narration.erasure_cleanup set due_at = now() where user_id = ?`, [hal.userId]);
    expect(await sweeper.sweepDue()).toBe(1);
    expect(eleven.deletedVoices).toContain(voiceId);
    expect(eleven.voices.has(voiceId)).toBe(false);
    expect(deletes().slice(deletesBefore)).toEqual([`/v1/voices/${voiceId}`, `/v1/voices/${voiceId}`]);
    expect(await cleanupOf(hal.userId)).toEqual([]);
    expect(await holdingsOf(hal.userId, [hal.jobId])).toEqual({ voices: 0, samples: 0, jobs: 0, files: [] });
  });

  it('is deleted there when the account went while ElevenLabs was cloning it', async () => {
    const ivy = randomUUID();
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const real = cloner();
    // ElevenLabs makes the voice; the answer reaches Storyloom only once the test lets it.
    const slow: VoiceCloner = { name: real.name, clone: async (input) => real.clone(input).then(async (made) => (await released, made)), deleteVoice: (id, o) => real.deleteVoice(id, o) };
    const voices = voicesWith(slow);
    for (const label of ['a', 'b', 'c', 'd', 'e']) await uploadSample(voices, ivy, label);
    const voicesBefore = eleven.voices.size;
    const cloning = voices.clone(ctxOf(ivy));
    cloning.catch(() => {});
    await eventually(() => expect(eleven.voices.size).toBe(voicesBefore + 1));
    const voiceId = [...eleven.voices].at(-1)!;

    await driver.deliver(driver.userDeleted(ivy));
    release();
    await expect(cloning).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    expect(await holdingsOf(ivy, [])).toMatchObject({ voices: 0, samples: 0 });
    expect(await cleanupOf(ivy)).toContainEqual(expect.objectContaining({ kind: 'PROVIDER_VOICE', target: voiceId }));
    await sweeperWith(real).sweepDue();
    expect(eleven.deletedVoices).toContain(voiceId);
    expect(await cleanupOf(ivy)).toEqual([]);
    expect(await holdingsOf(ivy, [])).toEqual({ voices: 0, samples: 0, jobs: 0, files: [] });
  });

  it('is taken for deleted when ElevenLabs no longer has it', async () => {
    const jo = randomUUID();
    await sql(
      `insert into narration.erasure_cleanup (id, user_id, kind, target, provider, due_at, created_at) values (?, ?, 'PROVIDER_VOICE', 'gone0000000000000000', 'elevenlabs', now(), now())`,
      [randomUUID(), jo],
    );
    expect(await sweeperWith(cloner()).sweepDue()).toBe(1);
    expect(await cleanupOf(jo)).toEqual([]);
    expect(eleven.deletedVoices).not.toContain('gone0000000000000000');
  });
});
