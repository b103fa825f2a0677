import { randomUUID } from 'node:crypto';
import { badInput, forbidden, userError } from '../../platform/errors.js';
import { isUuid } from '../../platform/formats.js';
import type { JobQueue } from '../../platform/jobs/queue.js';
import { requireUser, type SubgraphContext } from '../../platform/subgraph/context.js';
import { lockLiveUser } from './erasure.store.js';
import { NarrationJob, Voice } from './narration.entities.js';
import type { SpeechSynthesizer } from './providers/speech.js';
import type { StoryReader } from './story-reader.js';

export const NARRATION_QUEUE = 'narration';

/** The live subject of a job: what `narrationJobUpdated` follows. */
export const liveSubjectOf = (jobId: string) => `NarrationJob.${jobId}`;

export interface NarrateInput {
  storyId: string;
  voice: 'CLONED' | 'STOCK';
  stockVoice?: string | null;
}

/** Queues narrations of the caller's stories. */
export class NarrationService {
  constructor(
    private readonly deps: { stories: StoryReader; jobs: JobQueue; stockSpeech: SpeechSynthesizer; clock?: () => Date },
  ) {}

  stockVoices(): readonly string[] {
    return this.deps.stockSpeech.stockVoices;
  }

  async narrate(ctx: SubgraphContext, input: NarrateInput): Promise<{ job: NarrationJob }> {
    const userId = requireUser(ctx);
    if (!isUuid(input.storyId)) throw badInput('storyId is not a story id', 'storyId');
    if (input.voice === 'STOCK' && !this.deps.stockSpeech.stockVoices.includes(input.stockVoice ?? '')) {
      throw userError('INVALID_INPUT', `Choose one of the stock voices: ${this.deps.stockSpeech.stockVoices.join(', ')}`, 'stockVoice');
    }
    const found = await this.deps.stories.read(input.storyId, ctx.caller, ctx.correlationId);
    if ('refused' in found) {
      if (found.refused === 'NOT_FOUND') throw userError('STORY_NOT_FOUND', 'There is no such story', 'storyId');
      throw forbidden('Only its author narrates a story');
    }
    // A published story is anyone's to read, but only its author's to narrate (in their voice).
    if (found.story.authorId !== userId) throw forbidden('Only its author narrates a story');
    if (!found.story.content.trim()) throw userError('EMPTY_CONTENT', 'The story has no text to read', 'storyId');
    const now = (this.deps.clock ?? (() => new Date()))();
    const job = await ctx.transaction(async ({ em }) => {
      await lockLiveUser(em, userId);
      let providerVoiceId: string | null = null;
      if (input.voice === 'CLONED') {
        const voice = await em.findOne(Voice, { userId });
        if (voice?.status !== 'CLONED' || !voice.providerVoiceId) throw userError('VOICE_NOT_CLONED', 'Clone your voice first, or choose a stock voice', 'voice');
        providerVoiceId = voice.providerVoiceId;
      }
      return em.create(NarrationJob, {
        id: randomUUID(),
        userId,
        storyId: input.storyId,
        voiceKind: input.voice,
        stockVoice: input.voice === 'STOCK' ? input.stockVoice! : null,
        providerVoiceId,
        status: 'QUEUED',
        progress: 0,
        partsTotal: null,
        partsDone: 0,
        error: null,
        audioKey: null,
        audioContentType: null,
        durationMs: null,
        attempts: 0,
        correlationId: ctx.correlationId,
        createdAt: now,
        startedAt: null,
        completedAt: null,
      });
    });
    // After commit: a worker that takes it finds the row. Should this process die right here,
    // the next start queues every QUEUED job again (NarrationWorker.start).
    await this.deps.jobs.enqueue(NARRATION_QUEUE, { id: job.id });
    return { job };
  }

  /** A job, for its owner only. */
  async job(ctx: SubgraphContext, id: string): Promise<NarrationJob | null> {
    const userId = requireUser(ctx);
    if (!isUuid(id)) throw badInput('id is not a narration job id', 'id');
    // Batched: references to many jobs in one response cost one query.
    const job = await ctx
      .loader<string, NarrationJob | null>('narrationJobById', async (ids) => {
        const rows = await ctx.em.find(NarrationJob, { id: { $in: [...ids] } });
        return ids.map((jobId) => rows.find((row) => row.id === jobId) ?? null);
      })
      .load(id);
    if (!job) return null;
    if (job.userId !== userId) throw forbidden('Only its owner follows a narration job');
    return job;
  }
}
