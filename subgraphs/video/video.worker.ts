import { LockMode, type EntityManager, type MikroORM } from '@mikro-orm/postgresql';
import type { NewEvent } from '../../platform/events/envelope.js';
import { recordEvents } from '../../platform/events/outbox.js';
import { sleep } from '../../platform/http/provider-http.js';
import type { JobQueue, QueuedJob, Worker } from '../../platform/jobs/queue.js';
import type { LiveBus } from '../../platform/live/live.js';
import type { Logger } from '../../platform/log.js';
import { ObjectTooLarge, type BlobStorage } from '../../platform/storage/storage.js';
import { VideoProviderError, type TaskStatus, type VideoBrief, type VideoProvider, type VideoProviderName } from './providers/provider.js';
import type { StorySource } from './story-source.js';
import { VideoAttempt, VideoJob, type AttemptStatus, type VideoStatus } from './video.entities.js';
import * as events from './video.events.js';
import { isTerminal, jobProgress } from './video.rules.js';
import { liveSubjectOf, VIDEO_QUEUE } from './video.service.js';

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
}

/** Deliveries of a job before it fails for a reason that is not a provider's (the queue drops it after). */
const VIDEO_MAX_DELIVERIES = 5;

/** Another run of the job (a copy of its message, a worker thought dead) took it over. */
class Superseded extends Error {}

/** What one attempt came to: the video is ours, or the next provider's turn. */
type AttemptOutcome = 'COMPLETED' | 'NEXT';

/**
 * Makes videos: takes jobs from the work queue with bounded concurrency and tries the job's
 * providers in order. Each attempt is a row: the provider's task is stored before it is polled,
 * so a run that takes the job over after a crash polls the same task (no second task, no
 * second bill) and a finished attempt is never tried again. The video is copied into our
 * storage (the provider's URLs expire) and the job completes once: every write is fenced by
 * the run count this run claimed, and the completion and its event commit together.
 */
export class VideoWorker {
  private worker: Worker | null = null;
  private readonly log: Logger;
  private readonly now: () => Date;

  constructor(private readonly options: VideoWorkerOptions) {
    this.log = options.logger.child({ worker: 'video' });
    this.now = options.clock ?? (() => new Date());
  }

  async start(): Promise<void> {
    this.worker = await this.options.jobs.work(
      VIDEO_QUEUE,
      { concurrency: this.options.concurrency, ackWaitMs: this.options.ackWaitMs, maxAttempts: VIDEO_MAX_DELIVERIES },
      (job) => this.run(job),
    );
    // As narration: jobs queued before this process started may be missing from the queue (an
    // in-process queue dies with its process; an enqueue can fail after the commit). JetStream
    // drops a second copy of a waiting job, and keeps a RUNNING job's message until it is acked.
    const statuses: VideoStatus[] = this.options.jobs.kind === 'IN_PROCESS' ? ['QUEUED', 'RUNNING'] : ['QUEUED'];
    const open = await this.options.orm.em.fork().find(VideoJob, { status: { $in: statuses } }, { fields: ['id'] });
    for (const { id } of open) await this.options.jobs.enqueue(VIDEO_QUEUE, { id });
    if (open.length) this.log.info({ jobs: open.length }, 'queued unfinished videos again');
  }

  async stop(): Promise<void> {
    await this.worker?.stop();
  }

  private async run(queued: QueuedJob): Promise<void> {
    const job = await this.options.orm.em.fork().findOne(VideoJob, { id: queued.id });
    if (!job || isTerminal(job.status)) return;
    const log = this.log.child({ jobId: job.id, storyId: job.storyId, delivery: queued.attempt });
    const wasQueued = job.status === 'QUEUED';
    const claim: Partial<VideoJob> = wasQueued ? { status: 'RUNNING', startedAt: this.now(), runs: job.runs + 1 } : { runs: job.runs + 1 };
    const started: NewEvent | undefined = wasQueued
      ? { type: events.VIDEO_STARTED, userId: job.userId, payload: { jobId: job.id, storyId: job.storyId, providers: job.providers } satisfies events.VideoStarted }
      : undefined;
    if (!(await this.commit(job, { job: claim, event: started }, [job.status]))) return;
    this.publish(job);
    try {
      await this.generate(job, queued, log);
    } catch (error) {
      if (queued.signal.aborted) throw error;
      if (error instanceof Superseded) return log.warn('another run of this video took it over; this one stops');
      // Anything but a provider's answer (the database, storage, another subgraph) is retried
      // by the queue, until its last delivery: then the job fails rather than stay RUNNING.
      if (queued.attempt < VIDEO_MAX_DELIVERIES) throw error;
      log.error({ err: error }, 'video failed on its last delivery');
      await this.fail(job, 'The video could not be made; try again later');
    } finally {
      this.publish(job);
    }
  }

  /** Tries the job's providers from the attempt it is at, until one makes the video or none is left. */
  private async generate(job: VideoJob, queued: QueuedJob, log: Logger): Promise<void> {
    let brief: Promise<VideoBrief> | null = null;
    const briefOnce = () => (brief ??= this.brief(job, queued.signal));
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
      if ((await this.attempt(job, attempt, provider, briefOnce, queued.signal, alog)) === 'COMPLETED') return;
    }
  }

  private async attempt(job: VideoJob, attempt: VideoAttempt, provider: VideoProvider, brief: () => Promise<VideoBrief>, signal: AbortSignal, log: Logger): Promise<AttemptOutcome> {
    try {
      if (attempt.status === 'RUNNING') {
        if (!attempt.task) {
          const task = await provider.create(await brief(), { signal });
          // Stored before the first poll: from here a restart polls this task, never makes another.
          await this.update(job, attempt, { task, taskCreatedAt: this.now(), progress: 0 }, { progress: jobProgress('SUBMITTED') });
          log.info({ taskId: task.id }, 'provider task created');
        } else {
          log.info({ taskId: attempt.task.id }, 'polling the provider task this job already has');
        }
        const outcome = await this.poll(job, attempt, provider, signal);
        if (outcome.state === 'FAILED') {
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

  /** Copies the finished video into storage and completes the job with its event, once. */
  private async complete(job: VideoJob, attempt: VideoAttempt, provider: VideoProvider, signal: AbortSignal): Promise<void> {
    const video = await provider.download(attempt.resultUrl!, { signal });
    // Named by this run: a superseded run cannot overwrite the video of the one that completes.
    const key = `videos/${job.id}/video-${attempt.seq}-${job.runs}.mp4`;
    let stored;
    try {
      stored = await this.options.storage.put(key, video.body, { contentType: video.contentType, maxBytes: this.options.maxBytes });
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
    this.options.live.publish(liveSubjectOf(job.id), message);
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
