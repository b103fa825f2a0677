import { randomUUID } from 'node:crypto';
import type { MikroORM } from '@mikro-orm/postgresql';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestDatabase } from '../../test/support/database.js';
import { migrate, openDatabase } from '../../platform/db/database.js';
import { createLogger } from '../../platform/log.js';
import { AnalysisFailed, type AnalysisResult, type StoryAnalyser, type StoryText } from './analysis/analyser.js';
import { AnalysisWorker, type AnalysisWorkerOptions } from './analysis.worker.js';
import { storyMigrations } from './migrations/index.js';
import { storyEntities } from './story.entities.js';
import { cancelOpenAnalyses } from './story.store.js';

/**
 * The analysis queue on a real PostgreSQL: claims, leases that outlive a dead worker, a newer
 * request winning over a run in flight, and stopping that hands work back.
 */
const logger = createLogger('silent');
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let orm: MikroORM;
const workers: AnalysisWorker[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  orm = await openDatabase({ url: db.url, schema: 'story', entities: storyEntities, migrations: storyMigrations, logger });
  await migrate(orm);
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
  // Each test starts with an empty queue (a stopped worker hands its run back as PENDING).
  await sql(`delete from story.story_analysis`);
});
afterAll(async () => {
  await orm?.close();
  await db?.drop();
});

const sql = <T = Record<string, any>>(query: string, params: unknown[] = []) => orm.em.fork().getConnection().execute<T[]>(query, params);
const eventually = <T>(check: () => Promise<T>) => vi.waitFor(check, { timeout: 10_000, interval: 20 });

const result = (text: StoryText): AnalysisResult => ({
  summary: text.content.slice(0, 20),
  genre: 'drama',
  characters: [{ name: 'Mira', description: 'A girl.', traits: ['brave'] }],
  emotions: [{ label: 'joy', intensity: 0.5 }],
  provider: 'test',
  model: 'test-1',
  notes: [],
});

/** An analyser whose calls wait until the test releases them, and which records what it was given. */
function controlledAnalyser() {
  const calls: { text: StoryText; signal?: AbortSignal; finish: (outcome?: Error) => void }[] = [];
  const analyser: StoryAnalyser = {
    name: 'test',
    analyse: (text, options) =>
      new Promise((resolve, reject) => {
        const call = { text, signal: options?.signal, finish: (outcome?: Error) => (outcome ? reject(outcome) : resolve(result(text))) };
        options?.signal?.addEventListener('abort', () => reject(options.signal!.reason));
        calls.push(call);
      }),
  };
  return { analyser, calls };
}

function worker(analyser: StoryAnalyser, options: Partial<AnalysisWorkerOptions> = {}) {
  const w = new AnalysisWorker({ orm, analyser, logger, concurrency: 1, pollMs: 50, leaseMs: 60_000, maxAttempts: 3, onEventsCommitted: () => {}, ...options });
  workers.push(w);
  w.start();
  return w;
}

/** A story with a PENDING analysis, as the service queues one. */
async function queued(content = 'Mira went out.', left: { attempts: number } | null = null) {
  const id = randomUUID();
  const now = new Date();
  await sql(
    `insert into story.story (id, author_id, title, content, status, word_count, created_at, updated_at) values (?, ?, 'T', ?, 'DRAFT', 3, ?, ?)`,
    [id, randomUUID(), content, now, now],
  );
  if (left) {
    // What a worker that died mid-run leaves: RUNNING under its run id, the lease run out.
    await sql(
      `insert into story.story_analysis (story_id, status, content_hash, requested_at, attempts, run_id, lease_until) values (?, 'RUNNING', 'h', ?, ?, ?, now() - interval '1 second')`,
      [id, now, left.attempts, randomUUID()],
    );
  } else {
    await sql(`insert into story.story_analysis (story_id, status, content_hash, requested_at) values (?, 'PENDING', 'h', ?)`, [id, now]);
  }
  return id;
}

const analysis = async (id: string) => (await sql(`select * from story.story_analysis where story_id = ?`, [id]))[0]!;
const outboxTypes = async (id: string) => (await sql<{ type: string }>(`select type from story.outbox where envelope->'payload'->>'storyId' = ? order by created_at`, [id])).map((r) => r.type);

describe('the analysis worker', () => {
  it('completes a queued analysis and records its event in the same transaction', async () => {
    const { analyser, calls } = controlledAnalyser();
    const id = await queued();
    worker(analyser);
    await eventually(async () => expect(calls).toHaveLength(1));
    expect((await analysis(id)).status).toBe('RUNNING');
    calls[0]!.finish();
    await eventually(async () => expect((await analysis(id)).status).toBe('COMPLETED'));
    const row = await analysis(id);
    expect(row.characters).toEqual([{ id: expect.any(String), name: 'Mira', description: 'A girl.', traits: ['brave'] }]);
    expect(row.reading_time_minutes).toBe(1);
    expect(await outboxTypes(id)).toEqual(['story.analysis.completed']);
  });

  it('takes over a run whose worker died, once its lease has expired', async () => {
    const id = await queued();
    // What a worker that died mid-run leaves: RUNNING under its run id, the lease no longer renewed.
    await sql(`update story.story_analysis set status = 'RUNNING', attempts = 1, run_id = ?, lease_until = now() + interval '1 hour' where story_id = ?`, [randomUUID(), id]);
    const { analyser, calls } = controlledAnalyser();
    worker(analyser);
    // Not while the lease holds...
    await sql(`select pg_sleep(0.2)`);
    expect(calls).toHaveLength(0);
    // ...but once it has run out.
    await sql(`update story.story_analysis set lease_until = now() - interval '1 second' where story_id = ?`, [id]);
    await eventually(async () => expect(calls).toHaveLength(1));
    expect((await analysis(id)).attempts).toBe(2);
    calls[0]!.finish();
    await eventually(async () => expect((await analysis(id)).status).toBe('COMPLETED'));
    expect(await outboxTypes(id)).toEqual(['story.analysis.completed']);
  });

  it('drops the result of a run whose story was asked to be analysed again meanwhile', async () => {
    const { analyser, calls } = controlledAnalyser();
    const id = await queued('First text.');
    worker(analyser);
    await eventually(async () => expect(calls).toHaveLength(1));
    // What the service does for a new request: PENDING again, run id cleared.
    await sql(`update story.story set content = 'Second text.' where id = ?`, [id]);
    await sql(`update story.story_analysis set status = 'PENDING', run_id = null, attempts = 0 where story_id = ?`, [id]);
    calls[0]!.finish();
    await eventually(async () => expect(calls).toHaveLength(2));
    expect(calls[1]!.text.content).toBe('Second text.');
    calls[1]!.finish();
    await eventually(async () => expect((await analysis(id)).status).toBe('COMPLETED'));
    expect((await analysis(id)).summary).toBe('Second text.');
    expect(await outboxTypes(id)).toEqual(['story.analysis.completed']);
  });

  it('fails with the reason the analyser gives, and gives up on a story that keeps killing its worker', async () => {
    const { analyser, calls } = controlledAnalyser();
    const refused = await queued();
    worker(analyser);
    await eventually(async () => expect(calls).toHaveLength(1));
    calls[0]!.finish(new AnalysisFailed('REFUSED', 'The model declined'));
    await eventually(async () => expect((await analysis(refused)).status).toBe('FAILED'));
    expect(await analysis(refused)).toMatchObject({ failure_reason: 'REFUSED', failure_message: 'The model declined' });
    expect(await outboxTypes(refused)).toEqual(['story.analysis.failed']);

    const poison = await queued('Poison.', { attempts: 3 });
    await eventually(async () => expect((await analysis(poison)).status).toBe('FAILED'));
    expect((await analysis(poison)).failure_message).toMatch(/interrupted 3 times/);
    expect(calls).toHaveLength(1);
  });

  it('hands its runs back when stopped, without counting an attempt', async () => {
    const { analyser, calls } = controlledAnalyser();
    const id = await queued();
    const w = worker(analyser);
    await eventually(async () => expect(calls).toHaveLength(1));
    await w.stop();
    expect(calls[0]!.signal?.aborted).toBe(true);
    expect(await analysis(id)).toMatchObject({ status: 'PENDING', run_id: null, attempts: 0 });
    expect(await outboxTypes(id)).toEqual([]);
  });

  it('survives failing to store a result, and the story is analysed again once the lease runs out', async () => {
    const { analyser, calls } = controlledAnalyser();
    const id = await queued();
    // The database refuses the completion of the first attempt (as a restart mid-commit would).
    await sql(`create function story.refuse_first() returns trigger language plpgsql as $$
      begin
        if new.status = 'COMPLETED' and new.attempts = 1 then raise exception 'refused'; end if;
        return new;
      end $$`);
    await sql(`create trigger refuse_first before update on story.story_analysis for each row execute function story.refuse_first()`);
    try {
      worker(analyser, { leaseMs: 600 });
      await eventually(async () => expect(calls).toHaveLength(1));
      calls[0]!.finish();
      // Not FAILED: a good result that could not be stored is not the analysis failing. The
      // lease runs out (nobody renews it) and the story is taken again.
      await eventually(async () => expect(calls).toHaveLength(2));
      expect((await analysis(id)).attempts).toBe(2);
      calls[1]!.finish();
      await eventually(async () => expect((await analysis(id)).status).toBe('COMPLETED'));
      expect(await outboxTypes(id)).toEqual(['story.analysis.completed']);
    } finally {
      await sql(`drop trigger refuse_first on story.story_analysis`);
      await sql(`drop function story.refuse_first()`);
    }
  });

  it('abandons a run whose story is archived, and runs nothing more for it', async () => {
    const { analyser, calls } = controlledAnalyser();
    const id = await queued();
    worker(analyser, { leaseMs: 300 });
    await eventually(async () => expect(calls).toHaveLength(1));
    await orm.em.fork().transactional((em) => cancelOpenAnalyses(em, [id], new Date()));
    await sql(`update story.story set status = 'ARCHIVED' where id = ?`, [id]);
    // The heartbeat finds the run gone and aborts the provider call.
    await eventually(async () => expect(calls[0]!.signal?.aborted).toBe(true));
    expect(await analysis(id)).toMatchObject({ status: 'FAILED', failure_reason: 'CANCELLED', run_id: null });
    expect(await outboxTypes(id)).toEqual([]);
    // Even queued again by hand, an archived story is not claimed.
    await sql(`update story.story_analysis set status = 'PENDING' where story_id = ?`, [id]);
    await sql(`select pg_sleep(0.2)`);
    expect(calls).toHaveLength(1);
  });

  it('hands back a claim that was on its way when stop() came', async () => {
    const { analyser, calls } = controlledAnalyser();
    const id = await queued();
    // start() begins a claim at once; stop() lands while it is in flight.
    const w = worker(analyser);
    await w.stop();
    expect(calls.every((call) => call.signal?.aborted)).toBe(true);
    expect(await analysis(id)).toMatchObject({ status: 'PENDING', run_id: null, attempts: 0 });
  });

  it('never gives one story to two workers', async () => {
    const a = controlledAnalyser();
    const b = controlledAnalyser();
    const ids = await Promise.all([queued(), queued(), queued(), queued()]);
    worker(a.analyser, { concurrency: 2 });
    worker(b.analyser, { concurrency: 2 });
    await eventually(async () => expect(a.calls.length + b.calls.length).toBe(4));
    const claimed = [...a.calls, ...b.calls].map((c) => c.text.content);
    expect(claimed).toHaveLength(4);
    for (const call of [...a.calls, ...b.calls]) call.finish();
    await eventually(async () => {
      for (const id of ids) expect((await analysis(id)).status).toBe('COMPLETED');
    });
    const attempts = await sql<{ attempts: number }>(`select attempts from story.story_analysis where story_id in (?)`, [ids]);
    expect(attempts.map((r) => r.attempts)).toEqual([1, 1, 1, 1]);
  });
});
