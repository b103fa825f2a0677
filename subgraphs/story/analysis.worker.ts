import { randomUUID } from 'node:crypto';
import { LockMode, type EntityManager, type MikroORM } from '@mikro-orm/postgresql';
import { recordEvents } from '../../platform/events/outbox.js';
import { PollLoop } from '../../platform/jobs/poll-loop.js';
import type { Logger } from '../../platform/log.js';
import { AnalysisFailed, countWords, readingTimeMinutes, type AnalysisResult, type StoryAnalyser } from './analysis/analyser.js';
import { StoryAnalysis, type StoredCharacter } from './story.entities.js';
import * as events from './story.events.js';
import { characterId, contentHash } from './story.rules.js';
import { tableOf } from '../../platform/db/tables.js';

export interface AnalysisWorkerOptions {
  orm: MikroORM;
  analyser: StoryAnalyser;
  logger: Logger;
  /** Analyses run at once by this process. */
  concurrency: number;
  /** How often to look for work nobody announced: requests of other replicas, runs of dead workers. */
  pollMs: number;
  /** How long a claim lasts without a heartbeat; a run whose worker died is taken again after it. */
  leaseMs: number;
  /** Claims of one request before it is failed: a story that keeps killing its worker is not retried forever. */
  maxAttempts: number;
  /** Called after a commit that wrote events, so the relay publishes them at once. */
  onEventsCommitted: () => void;
}

interface Claim {
  storyId: string;
  runId: string;
  attempts: number;
  correlationId: string | null;
  authorId: string;
  title: string;
  content: string;
  language: string | null;
}

/**
 * Runs the queued analyses: story_analysis rows are the queue. A worker claims the oldest
 * PENDING row (or a RUNNING one whose lease expired) with `for update skip locked`, so replicas
 * never take the same one; it calls the analyser outside any transaction (a model may take a
 * minute; no connection is held meanwhile), keeps its lease alive while it waits, and stores the
 * result only if the row still carries its run id: a newer request for the story wins.
 */
export class AnalysisWorker {
  private readonly log: Logger;
  private readonly abort = new AbortController();
  private readonly running = new Set<Promise<void>>();
  private readonly loop: PollLoop;

  constructor(private readonly options: AnalysisWorkerOptions) {
    this.log = options.logger.child({ worker: 'story-analysis', analyser: options.analyser.name });
    this.loop = new PollLoop(() => this.fill(), { everyMs: options.pollMs, onError: (error) => this.log.warn({ err: error }, 'could not claim analyses; retrying at the next poll') });
  }

  private get stopped(): boolean {
    return !this.loop.running;
  }

  start(): void {
    this.loop.start();
  }

  /** Looks for work now (after a commit that queued some). */
  wake(): void {
    this.loop.wake();
  }

  /** Stops claiming, aborts the runs in flight and hands them back as PENDING for the next process. */
  async stop(): Promise<void> {
    const stopping = this.loop.stop();
    this.abort.abort();
    await stopping;
    await Promise.allSettled([...this.running]);
  }

  private async fill(): Promise<void> {
    while (!this.stopped && this.running.size < this.options.concurrency) {
      const claim = await this.claim();
      if (!claim) return;
      if (this.stopped) {
        // stop() came while the claim was on its way: hand it straight back.
        await this.release(claim);
        return;
      }
      const run = this.run(claim)
        // Storing an outcome can fail (the database restarting): the lease runs out and the
        // story is taken again, so this is logged, never left to crash the process.
        .catch((error: unknown) => this.log.warn({ err: error, storyId: claim.storyId }, 'could not store the analysis; it is retried when its lease runs out'))
        .finally(() => {
          this.running.delete(run);
          // A slot is free: there may be more waiting.
          this.wake();
        });
      this.running.add(run);
    }
  }

  private async claim(): Promise<Claim | null> {
    const em = this.options.orm.em.fork();
    const runId = randomUUID();
    // Leases are read and written with the database's clock, so replicas' clocks need not agree.
    // An archived story is analysed no more (archiving cancels its open analysis; this covers a race).
    const rows = await em.getConnection().execute<
      { story_id: string; attempts: number; correlation_id: string | null; author_id: string; title: string; content: string; language: string | null }[]
    >(
      `update ${tableOf(em, 'story_analysis')} a
          set "status" = 'RUNNING', "started_at" = ?, "attempts" = a."attempts" + 1, "run_id" = ?,
              "lease_until" = clock_timestamp() + ? * interval '1 millisecond'
         from ${tableOf(em, 'story')} s
        where s."id" = a."story_id"
          and a."story_id" = (
            select o."story_id" from ${tableOf(em, 'story_analysis')} o
              join ${tableOf(em, 'story')} os on os."id" = o."story_id" and os."status" <> 'ARCHIVED'
             where o."status" = 'PENDING' or (o."status" = 'RUNNING' and o."lease_until" < clock_timestamp())
             order by o."requested_at"
             limit 1
               for update of o skip locked)
      returning a."story_id", a."attempts", a."correlation_id", s."author_id", s."title", s."content", s."language"`,
      [new Date(), runId, this.options.leaseMs],
    );
    const row = rows[0];
    if (!row) return null;
    return {
      storyId: row.story_id,
      runId,
      attempts: row.attempts,
      correlationId: row.correlation_id,
      authorId: row.author_id,
      title: row.title,
      content: row.content,
      language: row.language,
    };
  }

  private async run(claim: Claim): Promise<void> {
    const log = this.log.child({ storyId: claim.storyId, runId: claim.runId, attempt: claim.attempts });
    if (claim.attempts > this.options.maxAttempts) {
      await this.fail(claim, new AnalysisFailed('PROVIDER_ERROR', `The analysis was interrupted ${claim.attempts - 1} times without finishing`));
      return;
    }
    // One controller per run: aborted when the worker stops or the run is replaced, and
    // unhooked afterwards (a process-long signal would collect one listener per request).
    const controller = new AbortController();
    const onStop = () => controller.abort(this.abort.signal.reason);
    this.abort.signal.addEventListener('abort', onStop, { once: true });
    if (this.abort.signal.aborted) onStop();
    let replaced = false;
    let beating = false;
    const heartbeat = setInterval(() => {
      // One renewal at a time: a slow database does not pile them up on the pool.
      if (beating) return;
      beating = true;
      this.extendLease(claim)
        .then((held) => {
          if (held) return;
          // A newer request (or an archive) took the row: its result would be dropped anyway.
          replaced = true;
          controller.abort(new Error('the analysis was replaced'));
        })
        .catch((error: unknown) => log.warn({ err: error }, 'could not extend the lease'))
        .finally(() => (beating = false));
    }, Math.max(50, Math.floor(this.options.leaseMs / 3)));
    const started = Date.now();
    let result: AnalysisResult;
    try {
      log.info('analysing');
      result = await this.options.analyser.analyse({ title: claim.title, content: claim.content, language: claim.language }, { signal: controller.signal });
    } catch (error) {
      clearInterval(heartbeat);
      if (controller.signal.aborted && this.stopped) {
        await this.release(claim);
        log.info('analysis handed back: the worker is stopping');
      } else if (replaced) {
        log.info('analysis abandoned: the story was asked to be analysed again, or archived');
      } else {
        const failure = error instanceof AnalysisFailed ? error : new AnalysisFailed('PROVIDER_ERROR', 'The analyser failed unexpectedly');
        if (!(error instanceof AnalysisFailed)) log.error({ err: error }, 'analyser failed unexpectedly');
        await this.fail(claim, failure);
        log.info({ ms: Date.now() - started, reason: failure.reason }, 'analysis failed');
      }
      return;
    } finally {
      clearInterval(heartbeat);
      this.abort.signal.removeEventListener('abort', onStop);
    }
    // Outside the analyser's try: failing to store a good result is not the analysis failing.
    await this.complete(claim, result);
    log.info({ ms: Date.now() - started, characters: result.characters.length, genre: result.genre }, 'analysis completed');
  }

  private async complete(claim: Claim, result: AnalysisResult): Promise<void> {
    const characters = new Map<string, StoredCharacter>();
    for (const character of result.characters) {
      const id = characterId(claim.storyId, character.name);
      if (!characters.has(id)) characters.set(id, { id, name: character.name, description: character.description, traits: character.traits });
    }
    const minutes = readingTimeMinutes(countWords(claim.content));
    await this.finish(claim, 'COMPLETED', {
      summary: result.summary,
      genre: result.genre,
      readingTimeMinutes: minutes,
      characters: [...characters.values()],
      emotions: result.emotions,
      provider: result.provider,
      model: result.model,
      notes: result.notes,
      contentHash: contentHash(claim),
    }, () => {
      const payload: events.StoryAnalysisCompleted = {
        storyId: claim.storyId,
        provider: result.provider,
        model: result.model,
        genre: result.genre,
        readingTimeMinutes: minutes,
        characters: [...characters.values()].map(({ id, name }) => ({ id, name })),
        dominantEmotion: result.emotions[0]?.label ?? null,
      };
      return { type: events.STORY_ANALYSIS_COMPLETED, userId: claim.authorId, payload };
    });
  }

  private async fail(claim: Claim, failure: AnalysisFailed): Promise<void> {
    await this.finish(claim, 'FAILED', { failureReason: failure.reason, failureMessage: failure.message }, () => {
      const payload: events.StoryAnalysisFailed = { storyId: claim.storyId, reason: failure.reason, message: failure.message };
      return { type: events.STORY_ANALYSIS_FAILED, userId: claim.authorId, payload };
    });
  }

  /** Stores the outcome and its event together, if the row is still this run's (else a newer request replaced it). */
  private async finish(claim: Claim, status: 'COMPLETED' | 'FAILED', fields: Partial<StoryAnalysis>, event: () => { type: string; userId: string; payload: unknown }): Promise<void> {
    const stored = await this.options.orm.em.fork().transactional(async (em: EntityManager) => {
      const analysis = await em.findOne(StoryAnalysis, { storyId: claim.storyId, runId: claim.runId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
      if (!analysis) return false;
      Object.assign(analysis, fields, { status, completedAt: new Date(), leaseUntil: null });
      await recordEvents(em, { serviceName: 'story', correlationId: claim.correlationId }, [event()]);
      return true;
    });
    if (stored) this.options.onEventsCommitted();
    else this.log.info({ storyId: claim.storyId }, 'analysis result dropped: the story was asked to be analysed again meanwhile');
  }

  /** Whether the row is still this run's. */
  private async extendLease(claim: Claim): Promise<boolean> {
    const em = this.options.orm.em.fork();
    const rows = await em.getConnection().execute<{ story_id: string }[]>(
      `update ${tableOf(em, 'story_analysis')} set "lease_until" = clock_timestamp() + ? * interval '1 millisecond'
        where "story_id" = ? and "run_id" = ? and "status" = 'RUNNING' returning "story_id"`,
      [this.options.leaseMs, claim.storyId, claim.runId],
    );
    return rows.length > 0;
  }

  /** Back to the queue, not counted as an attempt: stopping is not the story's fault. */
  private async release(claim: Claim): Promise<void> {
    const em = this.options.orm.em.fork();
    await em.getConnection().execute(
      `update ${tableOf(em, 'story_analysis')}
          set "status" = 'PENDING', "run_id" = null, "lease_until" = null, "attempts" = greatest("attempts" - 1, 0)
        where "story_id" = ? and "run_id" = ?`,
      [claim.storyId, claim.runId],
    );
  }
}
