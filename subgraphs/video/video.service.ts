import { randomUUID } from 'node:crypto';
import { badInput, forbidden, userError } from '../../platform/errors.js';
import { isUuid } from '../../platform/formats.js';
import type { JobQueue } from '../../platform/jobs/queue.js';
import { tableOf } from '../../platform/db/tables.js';
import { requireUser, type SubgraphContext } from '../../platform/subgraph/context.js';
import { lockLiveUser } from './erasure.store.js';
import { buildPrompt } from './prompt.js';
import type { AspectRatio, VideoProviderName } from './providers/provider.js';
import type { StorySource } from './story-source.js';
import { VideoAttempt, VideoEntitlement, VideoJob } from './video.entities.js';
import * as rules from './video.rules.js';
import { markEnqueued, VIDEO_QUEUE } from './video.queue.js';

export interface GenerateInput {
  storyId: string;
  style?: string | null;
  preferredProvider?: string | null;
  aspectRatio?: string | null;
}

/** Queues videos of the caller's stories, within what their plan allows. */
export class VideoService {
  constructor(
    private readonly deps: {
      stories: StorySource;
      jobs: JobQueue;
      /** Enabled providers, in the settings' order of preference. */
      providers: readonly VideoProviderName[];
      durationSeconds: number;
      clock?: () => Date;
    },
  ) {}

  enabledProviders(): readonly VideoProviderName[] {
    return this.deps.providers;
  }

  async generate(ctx: SubgraphContext, input: GenerateInput): Promise<{ job: VideoJob }> {
    const userId = requireUser(ctx);
    if (!isUuid(input.storyId)) throw badInput('storyId is not a story id', 'storyId');
    const style = rules.normalizeStyle(input.style);
    const providers = rules.providerOrder(this.deps.providers, input.preferredProvider ? rules.providerOfEnum(input.preferredProvider) : null);
    const aspectRatio: AspectRatio = rules.ASPECT_RATIOS[input.aspectRatio ?? 'LANDSCAPE']!;
    const found = await this.deps.stories.story(input.storyId, ctx.caller, ctx.correlationId);
    if ('refused' in found) {
      if (found.refused === 'NOT_FOUND') throw userError('STORY_NOT_FOUND', 'There is no such story', 'storyId');
      throw forbidden('Only its author makes videos of a story');
    }
    const { story } = found;
    if (story.authorId !== userId) throw forbidden('Only its author makes videos of a story');
    if (!story.content.trim()) throw userError('EMPTY_CONTENT', 'The story has no text to make a video of', 'storyId');
    const authorName = await this.deps.stories.authorName(userId, ctx.caller, ctx.correlationId).catch(() => null);
    const analysis = story.analysis;
    const source = {
      title: story.title,
      authorName,
      summary: analysis?.summary ?? null,
      genre: analysis?.genre ?? story.genre,
      characters: (analysis?.characters ?? []).map(({ name, description }) => ({ name, description })),
      emotions: (analysis?.emotions ?? []).map(({ label, intensity }) => ({ label, intensity })),
    };
    const prompt = buildPrompt({ ...source, opening: story.content.slice(0, 2000) }, style);
    const now = (this.deps.clock ?? (() => new Date()))();
    const job = await ctx.transaction(async ({ em }) => {
      // One user's requests are counted and inserted one at a time: ten at once on a plan that
      // allows one make one video, not ten. The erasure of the account takes the same lock.
      await lockLiveUser(em, userId);
      const entitlement = (await em.findOne(VideoEntitlement, { userId })) ?? rules.STARTING_ENTITLEMENTS;
      const month = rules.monthOf(now);
      // What billing will count (completed this month) and what may still complete (under way).
      const [row] = await em.getConnection().execute<{ count: string }[]>(
        `select count(*) as count from ${tableOf(em, 'video_job')}
          where "user_id" = ? and ("status" in ('QUEUED', 'RUNNING') or ("status" = 'COMPLETED' and "completed_at" >= ? and "completed_at" < ?))`,
        [userId, month.start, month.end],
        'all',
        em.getTransactionContext(),
      );
      rules.assertVideoAllowed(entitlement, Number(row?.count ?? 0));
      return em.create(VideoJob, {
        id: randomUUID(),
        userId,
        storyId: story.id,
        style,
        aspectRatio,
        durationSeconds: this.deps.durationSeconds,
        providers,
        source: { prompt, ...source },
        status: 'QUEUED',
        progress: 0,
        provider: null,
        error: null,
        videoKey: null,
        videoContentType: null,
        sizeBytes: null,
        runs: 0,
        leaseUntil: null,
        failures: 0,
        enqueuedAt: null,
        correlationId: ctx.correlationId,
        createdAt: now,
        startedAt: null,
        completedAt: null,
      });
    });
    // After commit, so a worker finds the row. Should this process die right here (or the
    // queue refuse), the worker's sweeper sends the jobs never marked enqueued.
    await this.deps.jobs.enqueue(VIDEO_QUEUE, { id: job.id });
    await markEnqueued(ctx.em.fork(), job.id);
    return { job };
  }

  /** A job, for its owner only. */
  async job(ctx: SubgraphContext, id: string): Promise<VideoJob | null> {
    const userId = requireUser(ctx);
    if (!isUuid(id)) throw badInput('id is not a video job id', 'id');
    const job = await jobById(ctx).load(id);
    if (!job) return null;
    if (job.userId !== userId) throw forbidden('Only its owner follows a video job');
    return job;
  }

  /** A job's attempts, oldest first (batched across jobs). */
  attempts(ctx: SubgraphContext, jobId: string): Promise<VideoAttempt[]> {
    return ctx
      .loader<string, VideoAttempt[]>('videoAttemptsOfJob', async (ids) => {
        const rows = await ctx.em.find(VideoAttempt, { jobId: { $in: [...ids] } }, { orderBy: { seq: 'asc' } });
        return ids.map((jobId) => rows.filter((row) => row.jobId === jobId));
      })
      .load(jobId);
  }

  /** A story's videos the caller may see: the completed ones, and all of their own. Newest first. */
  videosOfStory(ctx: SubgraphContext, storyId: string): Promise<VideoJob[]> {
    return ctx
      .loader<string, VideoJob[]>('videosOfStory', async (storyIds) => {
        const rows = await ctx.em.find(
          VideoJob,
          { storyId: { $in: [...storyIds] }, $or: [{ status: 'COMPLETED' }, ...(ctx.caller.userId ? [{ userId: ctx.caller.userId }] : [])] },
          { orderBy: { createdAt: 'desc' } },
        );
        return storyIds.map((sid) => rows.filter((j) => j.storyId === sid));
      })
      .load(storyId);
  }
}

// Batched: references to many jobs in one response cost one query.
const jobById = (ctx: SubgraphContext) =>
  ctx.loader<string, VideoJob | null>('videoJobById', async (ids) => {
    const rows = await ctx.em.find(VideoJob, { id: { $in: [...ids] } });
    return ids.map((jobId) => rows.find((row) => row.id === jobId) ?? null);
  });
