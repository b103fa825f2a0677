import { LockMode, type EntityManager, type MikroORM } from '@mikro-orm/postgresql';
import { tableOf } from '../../platform/db/tables.js';
import type { NewEvent } from '../../platform/events/envelope.js';
import { recordEvents } from '../../platform/events/outbox.js';
import { sleep } from '../../platform/http/provider-http.js';
import type { JobQueue, QueuedJob, Worker } from '../../platform/jobs/queue.js';
import type { LiveBus } from '../../platform/live/live.js';
import type { Logger } from '../../platform/log.js';
import { ObjectTooLarge, type BlobStorage } from '../../platform/storage/storage.js';
import { VideoProviderError, type DownloadedVideo, type TaskStatus, type VideoBrief, type VideoProvider, type VideoProviderName } from './providers/provider.js';
import type { StorySource } from './story-source.js';
import { VideoAttempt, VideoJob, type AttemptStatus, type VideoStatus } from './video.entities.js';
import * as events from './video.events.js';
import { isTerminal, jobProgress, videoKey } from './video.rules.js';
import { liveSubjectOf, markEnqueued, VIDEO_QUEUE } from './video.queue.js';

export interface VideoWorkerOptions {
  orm: MikroORM;
  jobs: JobQueue;
  live: LiveBus;
  storage: BlobStorage;
  stories: StorySource;
  /** The providers this process can call, by name. */
  providers: ReadonlyMap<VideoProviderName, VideoProvider>;
  concurrency: number;
  ackWaitMs: number;
  /** The largest video copied into storage. */
  maxBytes: number;
  logger: Logger;
  onEventsCommitted: () => void;
  clock?: () => Date;
  /** How long a run holds its job without renewing it (default ackWaitMs); a dead worker's job is taken over after it. */
  leaseMs?: number;
  /** How often open jobs no run holds are queued again (default the lease). */
  sweepMs?: number;
}

/** Failures that are not a provider's (database, storage, another subgraph) before the job fails. */
const VIDEO_MAX_FAILURES = 5;
/**
 * Deliveries of one message before the queue drops it. High: the row counts failures, graceful
 * stops count as deliveries too, and the sweeper queues a dropped job's again anyway.
 */
const VIDEO_MAX_DELIVERIES = 100;

/** Another run of the job (a copy of its message, a worker thought dead) took it over. */
class Superseded extends Error {}

/** Something the job waits on will come back: the queue's next delivery goes on, no failure counted. */
class RetryLater extends Error {}

/** How long a made video may fail to download for a while before its attempt fails over. */
const DOWNLOAD_GRACE_MS = 30 * 60_000;

/** For calls nothing may cut short (their own request timeouts bound them). */
const NEVER = new AbortController().signal;

/** `any` aborts when the worker stops or the run loses the job; `lost` only for the latter. */
interface RunSignals {
  any: AbortSignal;
  lost: AbortSignal;
}

/** What one attempt came to: the video is ours, or the next provider's turn. */
type AttemptOutcome = 'COMPLETED' | 'NEXT';

/**
 * Makes videos: takes jobs from the work queue with bounded concurrency and tries the job's
 * providers in order. Each attempt is a row: the provider's task is stored before it is polled,
 * so a run that takes the job over after a crash polls the same task (no second task, no
 * second bill) and a finished attempt is never tried again. The video is copied into our
 * storage (the provider's URLs expire) and the job completes once: every write is fenced by
 * the run count this run claimed, and the completion and its event commit together. A job
 * erased with its owner's account (its rows deleted) fails the fence like one another run took
 * over: the run stops at its next renewal or write, and a video it stored meanwhile is deleted.
 */
export class VideoWorker {
  private worker: Worker | null = null;
  private sweeper: NodeJS.Timeout | null = null;
  private sweeping: Promise<void> = Promise.resolve();
  private readonly log: Logger;
  private readonly now: () => Date;
  private readonly leaseMs: number;

  constructor(private readonly options: VideoWorkerOptions) {
    this.log = options.logger.child({ worker: 'video' });
    this.now = options.clock ?? (() => new Date());
    this.leaseMs = options.leaseMs ?? options.ackWaitMs;
  }

  async start(): Promise<void> {
    this.worker = await this.options.jobs.work(
      VIDEO_QUEUE,
      { concurrency: this.options.concurrency, ackWaitMs: this.options.ackWaitMs, maxAttempts: VIDEO_MAX_DELIVERIES },
      (job) => this.run(job),
    );
    const sweep = (atStart: boolean) => {
      this.sweeping = this.sweeping
        .then(() => this.sweep(atStart))
        .catch((error: unknown) => this.log.warn({ err: error }, 'could not look for abandoned videos; trying again later'));
    };
    sweep(true);
    this.sweeper = setInterval(() => sweep(false), this.options.sweepMs ?? this.leaseMs);
    this.sweeper.unref();
    await this.sweeping;
  }

  async stop(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    await this.sweeping;
    await this.worker?.stop();
  }

  /**
   * Queues again the open jobs no run holds: QUEUED ones whose message may be missing (an
   * in-process queue dies with its process; an enqueue can fail after the commit) and RUNNING
   * ones whose run stopped renewing its lease (its process died, or its message was dropped).
   * A job queued twice is harmless: the second message finds it held, or finished.
   */
  private async sweep(atStart: boolean): Promise<void> {
    const rows = await this.options.orm.em.fork().getConnection().execute<{ id: string; runs: number; status: VideoStatus }[]>(
      `select "id", "runs", "status" from ${tableOf(this.options.orm.em, 'video_job')}
        where ("status" = 'RUNNING' and ("lease_until" is null or "lease_until" <= clock_timestamp()))
           or ("status" = 'QUEUED' and (? or ("enqueued_at" is null and "created_at" <= clock_timestamp() - make_interval(secs => ?))))`,
      [atStart, this.leaseMs / 1000],
    );
    // A QUEUED job is queued under its own id: JetStream drops it if its message is still
    // there. A RUNNING one is keyed by the run that let it go: a message of its own even within
    // the duplicate window, and one per abandoned run however often we sweep.
    // The QUEUED ones sent are marked together, those sent before a failed enqueue included.
    const enqueued: string[] = [];
    try {
      for (const { id, runs, status } of rows) {
        await this.options.jobs.enqueue(VIDEO_QUEUE, { id }, status === 'QUEUED' ? {} : { key: `${id}:r${runs}` });
        if (status === 'QUEUED') enqueued.push(id);
      }
    } finally {
      await markEnqueued(this.options.orm.em.fork(), enqueued);
    }
    if (rows.length) this.log.info({ jobs: rows.length }, 'queued open videos again');
  }

  private async run(queued: QueuedJob): Promise<void> {
    const job = await this.claim(queued.id);
    // Finished, or held by a live run: this message is not needed (should that run die, the sweeper queues the job again).
    if (!job) return;
    const log = this.log.child({ jobId: job.id, storyId: job.storyId, run: job.runs });
    // Aborted when this run loses the job (its lease could not be renewed, another run has it).
    const lost = new AbortController();
    const heartbeat = this.heartbeat(job, lost, log);
    const signals = { lost: lost.signal, any: AbortSignal.any([queued.signal, lost.signal]) };
    try {
      this.publish(job);
      await this.generate(job, signals, log);
    } catch (error) {
      await heartbeat.stop();
      // Erased with its owner's account (user.deleted), a job is lost the same way: its row is gone.
      if (lost.signal.aborted || error instanceof Superseded) return log.warn('another run of this video took it over, or it was erased; this one stops');
      if (queued.signal.aborted || error instanceof RetryLater) {
        // Stopping, or waiting on something that will come back (the video is made and paid
        // for): hand the job over at once for the queue's next delivery, counting no failure.
        await this.release(job).catch((releaseError: unknown) => log.warn({ err: releaseError }, 'could not release a video job'));
        if (error instanceof RetryLater) log.warn({ err: error.cause }, error.message);
        throw error;
      }
      // Anything else that is not a provider's answer (the database, storage, another
      // subgraph) is retried by the queue a few times; then the job fails rather than stay RUNNING.
      const failures = await this.recordFailure(job);
      if (failures === null) return;
      if (failures < VIDEO_MAX_FAILURES) throw error;
      log.error({ err: error, failures }, 'video failed for a reason that is not a provider\'s, too often');
      await this.fail(job, 'The video could not be made; try again later');
    } finally {
      await heartbeat.stop();
      this.publish(job);
    }
  }

  /**
   * Renews the run's lease every third of it. `stop` also waits for a renewal in flight, so
   * one landing after a release cannot take the job back.
   */
  private heartbeat(job: VideoJob, lost: AbortController, log: Logger): { stop(): Promise<void> } {
    let inFlight: Promise<unknown> = Promise.resolve();
    const timer = setInterval(() => {
      inFlight = this.renew(job).then(
        (held) => held || lost.abort(new Superseded()),
        (error: unknown) => log.warn({ err: error }, 'could not renew the lease of a video job'),
      );
    }, Math.max(50, Math.floor(this.leaseMs / 3)));
    timer.unref();
    return {
      async stop() {
        clearInterval(timer);
        await inFlight;
      },
    };
  }

  /**
   * Takes the job for this run if it is QUEUED, or RUNNING with no live run (its lease ran
   * out): raises its run count (the fence every later write checks) and leases it, on the
   * database's clock. Returns null when the job is finished or another run holds it.
   */
  private async claim(id: string): Promise<VideoJob | null> {
    let started = false;
    const job = await this.options.orm.em.fork().transactional(async (em) => {
      const table = tableOf(em, 'video_job');
      const [row] = await em.getConnection().execute<{ status: VideoStatus; free: boolean }[]>(
        `select "status", ("lease_until" is null or "lease_until" <= clock_timestamp()) as "free" from ${table} where "id" = ? for update`,
        [id],
        'all',
        em.getTransactionContext(),
      );
      if (!row || isTerminal(row.status) || (row.status === 'RUNNING' && !row.free)) return null;
      started = row.status === 'QUEUED';
      await em.getConnection().execute(
        `update ${table} set "runs" = "runs" + 1, "status" = 'RUNNING', "started_at" = coalesce("started_at", ?),
           "lease_until" = clock_timestamp() + make_interval(secs => ?) where "id" = ?`,
        [this.now(), this.leaseMs / 1000, id],
        'run',
        em.getTransactionContext(),
      );
      const claimed = await em.findOneOrFail(VideoJob, { id });
      if (started) {
        const payload: events.VideoStarted = { jobId: id, storyId: claimed.storyId, providers: claimed.providers };
        await recordEvents(em, { serviceName: 'video', correlationId: claimed.correlationId }, [{ type: events.VIDEO_STARTED, userId: claimed.userId, payload }]);
      }
      return claimed;
    });
    if (started) this.options.onEventsCommitted();
    return job;
  }

  /** Extends this run's lease; false when the job is no longer this run's. */
  private async renew(job: VideoJob): Promise<boolean> {
    return (await this.fenced(job, `"lease_until" = clock_timestamp() + make_interval(secs => ?)`, [this.leaseMs / 1000])) !== null;
  }

  /** Lets another run take the job at once. */
  private async release(job: VideoJob): Promise<void> {
    await this.fenced(job, `"lease_until" = clock_timestamp()`, []);
  }

  /**
   * Counts a failure that was not a provider's and releases the job for the queue's retry; at
   * the last one the lease is kept, so failing the job cannot race another run. Null when the
   * job is no longer this run's.
   */
  private async recordFailure(job: VideoJob): Promise<number | null> {
    return this.fenced(job, `"failures" = "failures" + 1, "lease_until" = case when "failures" + 1 >= ? then "lease_until" else clock_timestamp() end`, [VIDEO_MAX_FAILURES]);
  }

  /** An update of this run's RUNNING job; its new failure count, or null when the job is not this run's any more. */
  private async fenced(job: VideoJob, set: string, params: unknown[]): Promise<number | null> {
    const rows = await this.options.orm.em.fork().getConnection().execute<{ failures: number }[]>(
      `update ${tableOf(this.options.orm.em, 'video_job')} set ${set} where "id" = ? and "runs" = ? and "status" = 'RUNNING' returning "failures"`,
      [...params, job.id, job.runs],
    );
    return rows[0]?.failures ?? null;
  }

  /** Tries the job's providers from the attempt it is at, until one makes the video or none is left. */
  private async generate(job: VideoJob, signals: RunSignals, log: Logger): Promise<void> {
    let brief: Promise<VideoBrief> | null = null;
    const briefOnce = () => (brief ??= this.brief(job, signals.any));
    for (;;) {
      let attempt = await this.options.orm.em.fork().findOne(VideoAttempt, { jobId: job.id }, { orderBy: { seq: 'desc' } });
      if (!attempt || attempt.status === 'FAILED' || attempt.status === 'TIMED_OUT') {
        const seq = attempt ? attempt.seq + 1 : 0;
        if (seq >= job.providers.length) return this.fail(job);
        attempt = await this.begin(job, seq);
      }
      const provider = this.options.providers.get(attempt.provider);
      if (!provider) {
        // The settings changed since the job was queued: the next provider it lists may still be enabled.
        await this.finish(job, attempt, 'FAILED', 'DISABLED', `${attempt.provider} is not enabled any more`);
        continue;
      }
      const alog = log.child({ provider: provider.name, seq: attempt.seq });
      if ((await this.attempt(job, attempt, provider, briefOnce, signals, alog)) === 'COMPLETED') return;
    }
  }

  private async attempt(job: VideoJob, attempt: VideoAttempt, provider: VideoProvider, brief: () => Promise<VideoBrief>, signals: RunSignals, log: Logger): Promise<AttemptOutcome> {
    const signal = signals.any;
    try {
      if (attempt.status === 'RUNNING') {
        if (!attempt.task) {
          const input = await brief();
          // Never cut short (its request timeout bounds it): a task the provider made must be
          // recorded, or the next run would pay for another.
          const task = await provider.create(input, { signal: NEVER });
          try {
            // Stored before the first poll: from here a restart polls this task, never makes another.
            await this.update(job, attempt, { task, taskCreatedAt: this.now(), progress: 0 }, { progress: jobProgress('SUBMITTED') });
          } catch (error) {
            // Nobody will poll it: the next run makes its own.
            await this.cancel(provider, { ...attempt, task }, log);
            throw error;
          }
          log.info({ taskId: task.id }, 'provider task created');
        } else {
          log.info({ taskId: attempt.task.id }, 'polling the provider task this job already has');
        }
        const outcome = await this.poll(job, attempt, provider, signal);
        if (outcome.state === 'FAILED') {
          // Given up on, the task would go on rendering (and billing) at the provider: cancelled
          // before the attempt is closed, so a stop in between cannot skip it.
          if (outcome.timedOut) await this.cancel(provider, attempt, log);
          await this.finish(job, attempt, outcome.timedOut ? 'TIMED_OUT' : 'FAILED', outcome.timedOut ? 'TIMEOUT' : (outcome.code ?? 'PROVIDER_FAILED'), outcome.message);
          log.info({ reason: outcome.message }, 'provider attempt failed; falling back');
          return 'NEXT';
        }
        await this.update(job, attempt, { status: 'SUCCEEDED', resultUrl: outcome.videoUrl, progress: 1, finishedAt: this.now() }, { progress: jobProgress('DOWNLOADING') });
      }
      await this.complete(job, attempt, provider, signal);
      log.info({ attempts: attempt.seq + 1 }, 'video completed');
      return 'COMPLETED';
    } catch (error) {
      if (signal.aborted || error instanceof Superseded) throw error;
      if (error instanceof VideoProviderError) {
        await this.finish(job, attempt, 'FAILED', error.reason, error.message);
        log.info({ reason: error.reason, message: error.message }, 'provider attempt failed; falling back');
        return 'NEXT';
      }
      if (error instanceof ObjectTooLarge) {
        await this.finish(job, attempt, 'FAILED', 'TOO_LARGE', `The video is larger than the ${error.limit} bytes allowed`);
        return 'NEXT';
      }
      throw error;
    }
  }

  /**
   * Polls the task at the provider's pace until it ends or its time (counted from the task's
   * creation, so a restart does not grant a new allowance) runs out. A provider that cannot be
   * asked for a moment is asked again; the deadline still holds.
   */
  private async poll(job: VideoJob, attempt: VideoAttempt, provider: VideoProvider, signal: AbortSignal): Promise<{ state: 'SUCCEEDED'; videoUrl: string } | { state: 'FAILED'; message: string; code?: string; timedOut?: boolean }> {
    const deadline = (attempt.taskCreatedAt ?? this.now()).getTime() + provider.taskTimeoutMs;
    for (;;) {
      signal.throwIfAborted();
      let status: TaskStatus | null = null;
      try {
        status = await provider.status(attempt.task!, { signal });
      } catch (error) {
        if (!(error instanceof VideoProviderError) || !TRANSIENT.has(error.reason)) throw error;
      }
      if (status?.state === 'SUCCEEDED') return status;
      if (status?.state === 'FAILED') return { state: 'FAILED', message: status.message, code: 'PROVIDER_FAILED' };
      if (status?.state === 'RUNNING' && status.progress !== null && Math.abs(status.progress - (attempt.progress ?? 0)) >= 0.01) {
        await this.update(job, attempt, { progress: status.progress }, { progress: jobProgress('MAKING', status.progress) });
      }
      const left = deadline - this.now().getTime();
      if (left <= 0) return { state: 'FAILED', message: `${provider.name} made no video within ${Math.round(provider.taskTimeoutMs / 1000)} s`, timedOut: true };
      await sleep(Math.min(provider.pollIntervalMs, left), signal);
    }
  }

  /** Asks the provider to stop a task the job gave up on; best effort, bounded by the provider's request timeout: the job moves on either way. */
  private async cancel(provider: VideoProvider, attempt: VideoAttempt, log: Logger): Promise<void> {
    if (!provider.cancel || !attempt.task) return;
    try {
      await provider.cancel(attempt.task, { signal: NEVER });
      log.info({ taskId: attempt.task.id }, 'provider task cancelled');
    } catch (error) {
      log.warn({ err: error, taskId: attempt.task.id }, 'could not cancel a provider task the job gave up on');
    }
  }

  /** Copies the finished video into storage and completes the job with its event, once. */
  private async complete(job: VideoJob, attempt: VideoAttempt, provider: VideoProvider, signal: AbortSignal): Promise<void> {
    const video = await this.download(job, attempt, provider, signal);
    // Named by this run: a superseded run cannot overwrite the video of the one that completes.
    const key = videoKey(job.id, attempt.seq, job.runs);
    let stored;
    try {
      stored = await this.options.storage.put(key, video.body, { contentType: video.contentType, maxBytes: this.options.maxBytes });
    } catch (error) {
      // The provider's body stalled or broke midway: the video is still there.
      if (error instanceof VideoProviderError) throw this.retryLater(attempt, provider, error);
      throw error;
    } finally {
      video.body.destroy();
    }
    const done = await this.commit(
      job,
      {
        job: { status: 'COMPLETED', progress: jobProgress('DONE'), provider: provider.name, videoKey: key, videoContentType: stored.contentType, sizeBytes: stored.size, completedAt: this.now(), error: null },
        event: async (em) => ({
          type: events.VIDEO_COMPLETED,
          userId: job.userId,
          payload: { jobId: job.id, storyId: job.storyId, provider: provider.name, contentType: stored.contentType, sizeBytes: stored.size, attempts: await summary(em, job.id) } satisfies events.VideoCompleted,
        }),
      },
      ['RUNNING'],
    );
    if (!done) {
      await this.options.storage.delete(key);
      throw new Superseded();
    }
  }

  /**
   * The finished video's bytes. The video exists and is paid for: a download that fails for a
   * while (the CDN, a stall) is retried by the queue with the attempt still SUCCEEDED, and a
   * link that expired (the job waited, a restart) is asked of the provider again once. Only a
   * video that cannot be had at all fails the attempt over to the next provider.
   */
  private async download(job: VideoJob, attempt: VideoAttempt, provider: VideoProvider, signal: AbortSignal): Promise<DownloadedVideo> {
    try {
      return await provider.download(attempt.resultUrl!, { signal });
    } catch (error) {
      if (!(error instanceof VideoProviderError)) throw error;
      if (TRANSIENT.has(error.reason)) throw this.retryLater(attempt, provider, error);
      if (error.reason !== 'INVALID_RESPONSE' || !attempt.task) throw error;
      try {
        const status = await provider.status(attempt.task, { signal });
        if (status.state !== 'SUCCEEDED' || status.videoUrl === attempt.resultUrl) throw error;
        await this.update(job, attempt, { resultUrl: status.videoUrl });
        return await provider.download(status.videoUrl, { signal });
      } catch (refreshError) {
        if (refreshError instanceof VideoProviderError && TRANSIENT.has(refreshError.reason)) throw this.retryLater(attempt, provider, refreshError);
        throw refreshError;
      }
    }
  }

  /**
   * A made video that cannot be had for now: the queue tries again later, the attempt still
   * SUCCEEDED and no failure counted, for DOWNLOAD_GRACE_MS after the provider finished it;
   * past that the provider's error stands and the attempt fails over.
   */
  private retryLater(attempt: VideoAttempt, provider: VideoProvider, error: VideoProviderError): Error {
    const finished = attempt.finishedAt?.getTime() ?? this.now().getTime();
    if (this.now().getTime() - finished > DOWNLOAD_GRACE_MS) return error;
    return new RetryLater(`the video made by ${provider.name} cannot be copied for now; trying again later`, { cause: error });
  }

  /** Every provider failed (or the job cannot go on): FAILED with each attempt's error; nothing made, nothing charged. */
  private async fail(job: VideoJob, reason?: string): Promise<void> {
    await this.commit(
      job,
      {
        job: { status: 'FAILED', completedAt: this.now() },
        before: async (em) => {
          // An attempt cut short by a systemic failure ends with the job.
          await em.nativeUpdate(VideoAttempt, { jobId: job.id, status: 'RUNNING' }, { status: 'FAILED', errorCode: 'SYSTEM', error: reason ?? 'Stopped', finishedAt: this.now() });
          const attempts = await summary(em, job.id);
          const error = reason ?? failureMessage(attempts);
          await em.nativeUpdate(VideoJob, { id: job.id }, { error });
          job.error = error;
          return { type: events.VIDEO_FAILED, userId: job.userId, payload: { jobId: job.id, storyId: job.storyId, error, attempts } satisfies events.VideoFailed };
        },
      },
      ['RUNNING'],
    );
  }

  private async begin(job: VideoJob, seq: number): Promise<VideoAttempt> {
    const attempt: VideoAttempt = {
      jobId: job.id,
      seq,
      provider: job.providers[seq]!,
      status: 'RUNNING',
      task: null,
      progress: null,
      resultUrl: null,
      error: null,
      errorCode: null,
      startedAt: this.now(),
      taskCreatedAt: null,
      finishedAt: null,
    };
    const begun = await this.commit(job, { job: { provider: attempt.provider, progress: 0 }, before: async (em) => void (await em.insert(VideoAttempt, attempt)) }, ['RUNNING']);
    if (!begun) throw new Superseded();
    this.publish(job);
    return attempt;
  }

  private async finish(job: VideoJob, attempt: VideoAttempt, status: AttemptStatus, code: string, message: string): Promise<void> {
    await this.update(job, attempt, { status, errorCode: code, error: message, finishedAt: this.now() });
  }

  /** Changes an attempt (and the job), fenced; the job's subscribers hear of it. */
  private async update(job: VideoJob, attempt: VideoAttempt, changes: Partial<VideoAttempt>, jobChanges?: Partial<VideoJob>): Promise<void> {
    const applied = await this.commit(job, { job: jobChanges, before: async (em) => void (await em.nativeUpdate(VideoAttempt, { jobId: attempt.jobId, seq: attempt.seq }, changes)) }, ['RUNNING']);
    if (!applied) throw new Superseded();
    Object.assign(attempt, changes);
    this.publish(job);
  }

  /**
   * One transaction, if the job is still in one of `from` and still this run's (its run count
   * as this run claimed it): `before` (attempt rows; it may return the event), the job's
   * changes, and the event. Returns whether it applied; `job` follows.
   */
  private async commit(
    job: VideoJob,
    change: { job?: Partial<VideoJob>; before?: (em: EntityManager) => Promise<NewEvent | void>; event?: NewEvent | ((em: EntityManager) => Promise<NewEvent>) },
    from: VideoStatus[],
  ): Promise<boolean> {
    let event: NewEvent | undefined;
    const applied = await this.options.orm.em.fork().transactional(async (em) => {
      const current = await em.findOne(VideoJob, { id: job.id, runs: job.runs, status: { $in: from } }, { lockMode: LockMode.PESSIMISTIC_WRITE, fields: ['id'] });
      if (!current) return false;
      event = (await change.before?.(em)) ?? undefined;
      if (change.job && Object.keys(change.job).length) await em.nativeUpdate(VideoJob, { id: job.id }, change.job);
      if (change.event) event = typeof change.event === 'function' ? await change.event(em) : change.event;
      if (event) await recordEvents(em, { serviceName: 'video', correlationId: job.correlationId }, [event]);
      return true;
    });
    if (applied && change.job) Object.assign(job, change.job);
    if (applied && event) this.options.onEventsCommitted();
    return applied;
  }

  /** What the providers get: the job's snapshot of the story, and its newest narration's audio when there is one. */
  private async brief(job: VideoJob, signal: AbortSignal): Promise<VideoBrief> {
    const { prompt, ...story } = job.source;
    const narration = await this.options.stories
      .latestNarration(job.storyId, { userId: job.userId, roles: ['USER'] }, { correlationId: job.correlationId ?? undefined, signal })
      .catch((error: unknown) => {
        if (signal.aborted) throw error;
        this.log.warn({ jobId: job.id, err: error }, 'the story narration could not be read; the video goes without it');
        return null;
      });
    return { jobId: job.id, prompt, durationSeconds: job.durationSeconds, aspectRatio: job.aspectRatio, style: job.style, story, narration };
  }

  /** A live update (`video.generation.progress`, not durable): the gateway fetches the job again for its subscribers. */
  private publish(job: VideoJob): void {
    const message: events.VideoProgress = { type: events.VIDEO_PROGRESS, jobId: job.id, status: job.status, progress: job.progress, provider: job.provider };
    try {
      this.options.live.publish(liveSubjectOf(job.id), message);
    } catch (error) {
      // Live updates are not durable: a subscriber refetches at its next update.
      this.log.warn({ err: error, jobId: job.id }, 'could not publish a live update');
    }
  }
}

/** Reasons a status poll is tried again rather than the attempt given up. */
const TRANSIENT = new Set(['UNAVAILABLE', 'TIMEOUT', 'THROTTLED']);

async function summary(em: EntityManager, jobId: string): Promise<events.AttemptSummary[]> {
  const attempts = await em.find(VideoAttempt, { jobId }, { orderBy: { seq: 'asc' } });
  return attempts.map((a) => ({ provider: a.provider, status: a.status, error: a.error }));
}

function failureMessage(attempts: events.AttemptSummary[]): string {
  if (!attempts.length) return 'No video provider is enabled';
  return `Every provider failed: ${attempts.map((a) => `${a.provider}: ${a.error ?? a.status}`).join('; ')}`;
}
