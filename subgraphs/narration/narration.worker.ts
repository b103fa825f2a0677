import type { MikroORM } from '@mikro-orm/postgresql';
import { recordEvents } from '../../platform/events/outbox.js';
import type { NewEvent } from '../../platform/events/envelope.js';
import type { JobQueue, QueuedJob, Worker } from '../../platform/jobs/queue.js';
import type { LiveBus } from '../../platform/live/live.js';
import type { Logger } from '../../platform/log.js';
import { readAll, type BlobStorage } from '../../platform/storage/storage.js';
import { NarrationJob } from './narration.entities.js';
import * as events from './narration.events.js';
import { audioContentType, isTerminal, narrationAudioKey, partKey } from './narration.rules.js';
import { liveSubjectOf, NARRATION_QUEUE } from './narration.service.js';
import { joinAudio, splitForSpeech } from './providers/audio.js';
import { ProviderFailed, type NarrationVoice, type SpeechSynthesizer, type SynthesizedAudio } from './providers/speech.js';
import type { StoryReader } from './story-reader.js';

export interface NarrationWorkerOptions {
  orm: MikroORM;
  jobs: JobQueue;
  live: LiveBus;
  storage: BlobStorage;
  stories: StoryReader;
  /** Speaks stock voices (local, OpenAI). */
  stockSpeech: SpeechSynthesizer;
  /** Speaks cloned voices (local, ElevenLabs). */
  clonedSpeech: SpeechSynthesizer;
  concurrency: number;
  ackWaitMs: number;
  logger: Logger;
  onEventsCommitted: () => void;
}

/**
 * Reads stories aloud: takes narration jobs from the work queue with bounded concurrency,
 * synthesizes the story part by part (each part's audio stored, the row counting the parts
 * done, so a job taken again after a crash continues where it stopped), joins the parts, and
 * completes the job once: the status change and its event commit together, guarded by the
 * status the job had. A job erased with its owner's account (its row deleted) fails every
 * guarded commit: the run stops there, deleting the parts it stored, and recreates nothing.
 */
export class NarrationWorker {
  private worker: Worker | null = null;
  private readonly log: Logger;

  constructor(private readonly options: NarrationWorkerOptions) {
    this.log = options.logger.child({ worker: 'narration' });
  }

  async start(): Promise<void> {
    this.worker = await this.options.jobs.work(
      NARRATION_QUEUE,
      { concurrency: this.options.concurrency, ackWaitMs: this.options.ackWaitMs, maxAttempts: NARRATION_MAX_ATTEMPTS },
      (job) => this.run(job),
    );
    // Jobs queued before this process started may not be in the queue (an in-process queue dies
    // with its process; an enqueue can fail after the commit): queue them again. JetStream drops
    // a second copy of a waiting job; a run of a finished job does nothing.
    // On JetStream a RUNNING job's message is still in the work queue (unacknowledged) and comes
    // back by itself; the in-process queue lost it with the last process.
    const statuses: NarrationJob['status'][] = this.options.jobs.kind === 'IN_PROCESS' ? ['QUEUED', 'RUNNING'] : ['QUEUED'];
    const open = await this.options.orm.em.fork().find(NarrationJob, { status: { $in: statuses } }, { fields: ['id'] });
    for (const { id } of open) await this.options.jobs.enqueue(NARRATION_QUEUE, { id });
    if (open.length) this.log.info({ jobs: open.length }, 'queued unfinished narrations again');
  }

  async stop(): Promise<void> {
    await this.worker?.stop();
  }

  private async run(queued: QueuedJob): Promise<void> {
    const em = this.options.orm.em.fork();
    const job = await em.findOne(NarrationJob, { id: queued.id });
    if (!job || isTerminal(job.status)) return;
    const log = this.log.child({ jobId: job.id, storyId: job.storyId, attempt: queued.attempt });
    // Claimed by raising `attempts` from the value read: a second run of the job (a copy of its
    // message, a worker thought dead) fails this or any later guarded commit, and stops.
    const claim: Partial<NarrationJob> = job.status === 'QUEUED' ? { status: 'RUNNING', startedAt: new Date(), attempts: job.attempts + 1 } : { attempts: job.attempts + 1 };
    const started: NewEvent | undefined =
      job.status === 'QUEUED'
        ? { type: events.NARRATION_STARTED, userId: job.userId, payload: { jobId: job.id, storyId: job.storyId, voice: job.voiceKind } satisfies events.NarrationStarted }
        : undefined;
    if (!(await this.commit(job, claim, [job.status], started))) return;
    this.publish(job);
    try {
      const lookup = await this.options.stories.read(job.storyId, { userId: job.userId, roles: ['USER'] }, job.correlationId ?? undefined);
      if ('refused' in lookup) throw new ProviderFailed('REFUSED', lookup.refused === 'NOT_FOUND' ? 'The story no longer exists' : 'The story can no longer be read');
      const speech = job.voiceKind === 'CLONED' ? this.options.clonedSpeech : this.options.stockSpeech;
      const voice: NarrationVoice = job.voiceKind === 'CLONED' ? { kind: 'CLONED', providerVoiceId: job.providerVoiceId! } : { kind: 'STOCK', stockVoice: job.stockVoice! };
      const parts = splitForSpeech(`${lookup.story.title}.\n\n${lookup.story.content}`, speech.maxChars);
      if (!parts.length) throw new ProviderFailed('REFUSED', 'The story has no text to read');
      if (job.partsTotal !== parts.length && !(await this.commit(job, { partsTotal: parts.length, partsDone: 0, progress: 0 }, ['RUNNING']))) return this.lost(job, 0, log);
      for (let index = job.partsDone; index < parts.length; index++) {
        queued.signal.throwIfAborted();
        const audio = await speech.synthesize(parts[index]!, voice, { signal: queued.signal });
        await this.options.storage.put(partKey(job.id, index), audio.audio, { contentType: audioContentType(audio.format) });
        // Joining the parts is the last step: progress reaches 1 with COMPLETED.
        if (!(await this.commit(job, { partsDone: index + 1, progress: (index + 1) / (parts.length + 1) }, ['RUNNING']))) return this.lost(job, index + 1, log);
        this.publish(job);
      }
      const audio = joinAudio(await Promise.all(parts.map((_, index) => this.part(job.id, index))));
      const contentType = audioContentType(audio.format);
      // Named by this run: a superseded run cannot overwrite the audio of the one that completes.
      const audioKey = narrationAudioKey(job.id, job.attempts, audio.format);
      await this.options.storage.put(audioKey, audio.audio, { contentType });
      const completed = await this.commit(
        job,
        { status: 'COMPLETED', progress: 1, audioKey, audioContentType: contentType, durationMs: audio.durationMs === null ? null : Math.round(audio.durationMs), completedAt: new Date() },
        ['RUNNING'],
        {
          type: events.NARRATION_COMPLETED,
          userId: job.userId,
          payload: { jobId: job.id, storyId: job.storyId, durationMs: audio.durationMs === null ? null : Math.round(audio.durationMs), contentType } satisfies events.NarrationCompleted,
        },
      );
      if (!completed) {
        await this.options.storage.delete(audioKey);
        return this.lost(job, parts.length, log);
      }
      log.info({ parts: parts.length, durationMs: audio.durationMs }, 'narration completed');
      await Promise.all(parts.map((_, index) => this.options.storage.delete(partKey(job.id, index))));
    } catch (error) {
      if (queued.signal.aborted) throw error;
      // Anything but a provider's answer (the database, storage, the story subgraph) is retried
      // by the queue, until its last attempt: then the job fails rather than stay RUNNING.
      const lastAttempt = queued.attempt >= NARRATION_MAX_ATTEMPTS;
      if (!(error instanceof ProviderFailed) && !lastAttempt) throw error;
      const message = error instanceof ProviderFailed ? error.message : 'The narration could not be completed; try again later';
      if (!(error instanceof ProviderFailed)) log.error({ err: error }, 'narration failed on its last attempt');
      await this.commit(job, { status: 'FAILED', error: message, completedAt: new Date() }, ['RUNNING'], {
        type: events.NARRATION_FAILED,
        userId: job.userId,
        payload: { jobId: job.id, storyId: job.storyId, error: message } satisfies events.NarrationFailed,
      });
      log.info({ reason: error instanceof ProviderFailed ? error.reason : 'SYSTEM' }, 'narration failed');
    } finally {
      this.publish(job);
    }
  }

  /**
   * A guarded commit found the job no longer this run's: another run took it over (and carries
   * on from the parts stored), or the job was erased with its owner's account. Then the parts
   * this run stored (`partsStored`, from the first) may have landed after the erasure listed
   * the job's files: they are deleted here. The erasure deletes the same keys again later, for
   * a process that dies before it gets here.
   */
  private async lost(job: NarrationJob, partsStored: number, log: Logger): Promise<void> {
    if (await this.options.orm.em.fork().count(NarrationJob, { id: job.id })) return log.warn('another run of this narration took it over; this one stops');
    try {
      for (let index = 0; index < partsStored; index++) await this.options.storage.delete(partKey(job.id, index));
    } catch (error) {
      log.warn({ err: error }, 'could not delete the parts of an erased narration; the erasure deletes them later');
    }
    log.info('the narration was erased with its owner\'s account; this run stops');
  }

  private async part(jobId: string, index: number): Promise<SynthesizedAudio> {
    const stored = await this.options.storage.read(partKey(jobId, index));
    if (!stored) throw new Error(`part ${index} of narration ${jobId} is missing`);
    return { audio: await readAll(stored.body), format: stored.contentType === 'audio/wav' ? 'wav' : 'mp3', durationMs: null };
  }

  /**
   * Applies `changes` if the job is still in one of `from` (another worker may have finished
   * it), with `event` in the same transaction. Returns whether it applied; `job` follows.
   */
  private async commit(job: NarrationJob, changes: Partial<NarrationJob>, from: NarrationJob['status'][], event?: NewEvent): Promise<boolean> {
    const applied = await this.options.orm.em.fork().transactional(async (em) => {
      // `attempts` as read by this run: the fence against a second run of the same job.
      const updated = await em.nativeUpdate(NarrationJob, { id: job.id, status: { $in: from }, attempts: job.attempts }, changes);
      if (!updated) return false;
      if (event) await recordEvents(em, { serviceName: 'narration', correlationId: job.correlationId }, [event]);
      return true;
    });
    if (applied) Object.assign(job, changes);
    if (applied && event) this.options.onEventsCommitted();
    return applied;
  }

  /** A live update: the gateway fetches the job again for its subscribers. */
  private publish(job: NarrationJob): void {
    this.options.live.publish(liveSubjectOf(job.id), { id: job.id, status: job.status, progress: job.progress });
  }
}

/** Deliveries of a job before it fails for a reason that is not the provider's (the queue drops it after). */
const NARRATION_MAX_ATTEMPTS = 5;
