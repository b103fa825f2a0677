import { randomUUID } from 'node:crypto';
import { LockMode, type EntityManager } from '@mikro-orm/postgresql';
import { badInput, forbidden, unauthenticated, userError } from '../../platform/errors.js';
import { isUuid } from '../../platform/formats.js';
import { requireUser, type SubgraphContext, type UnitOfWork } from '../../platform/subgraph/context.js';
import { countWords } from './analysis/analyser.js';
import { Entitlement, Story, StoryAnalysis } from './story.entities.js';
import * as events from './story.events.js';
import * as rules from './story.rules.js';
import { cancelOpenAnalyses, isDeletedAuthor, lockAuthor } from './story.store.js';

/** The story mutations, as the signed-in author asks for them. */
export class StoryService {
  constructor(
    /** Told after a commit that queued an analysis, so a worker takes it at once. */
    private readonly analysisQueued: () => void,
    readonly clock: () => Date = () => new Date(),
  ) {}

  async create(ctx: SubgraphContext, input: rules.StoryInput): Promise<{ story: Story }> {
    const authorId = requireUser(ctx);
    const fields = rules.storyFields(input, 'create');
    const story = await ctx.transaction(async ({ em, emit }) => {
      // One author's creations take turns from here to commit: the count below cannot be
      // passed by a concurrent create (ten at once on FREE make exactly three stories).
      await lockAuthor(em, authorId);
      // An access token outlives its account by up to its lifetime.
      if (await isDeletedAuthor(em, authorId)) throw unauthenticated('This account has been deleted');
      const now = this.clock();
      const entitlements = (await em.findOne(Entitlement, { userId: authorId })) ?? rules.STARTING_ENTITLEMENTS;
      const createdThisMonth = await em.count(Story, { authorId, createdAt: { $gte: rules.monthStart(now) } });
      rules.assertStoryAllowed(entitlements, createdThisMonth);
      const content = fields.content ?? '';
      const story = em.create(Story, {
        id: randomUUID(),
        authorId,
        title: fields.title!,
        content,
        status: 'DRAFT',
        category: fields.category ?? null,
        genre: fields.genre ?? null,
        tone: fields.tone ?? null,
        audience: fields.audience ?? null,
        language: fields.language ?? null,
        wordCount: countWords(content),
        createdAt: now,
        updatedAt: now,
        publishedAt: null,
        archivedAt: null,
        collaborationCompletedAt: null,
      });
      const payload: events.StoryCreated = events.storyMetadata(story);
      emit({ type: events.STORY_CREATED, payload });
      return story;
    });
    return { story };
  }

  async update(ctx: SubgraphContext, id: string, input: rules.StoryInput): Promise<{ story: Story }> {
    const fields = rules.storyFields(input, 'update');
    return this.change(ctx, id, async (story, { emit }) => {
      rules.assertChangeable(story);
      if (story.status === 'PUBLISHED' && fields.content !== undefined && !fields.content.trim()) {
        throw userError('EMPTY_CONTENT', 'A published story keeps its text; archive it instead', 'content');
      }
      const changed = (Object.keys(fields) as (keyof rules.StoryFields)[]).filter((key) => story[key] !== fields[key]);
      if (!changed.length) return;
      Object.assign(story, fields, { updatedAt: this.clock() });
      if (fields.content !== undefined) story.wordCount = countWords(story.content);
      const payload: events.StoryUpdated = { ...events.storyMetadata(story), changed };
      emit({ type: events.STORY_UPDATED, payload });
    });
  }

  async publish(ctx: SubgraphContext, id: string): Promise<{ story: Story }> {
    let queued = false;
    const result = await this.change(ctx, id, async (story, { em, emit }) => {
      rules.assertPublishable(story);
      const now = this.clock();
      Object.assign(story, { status: 'PUBLISHED', publishedAt: now, updatedAt: now });
      const payload: events.StoryPublished = { ...events.storyMetadata(story), publishedAt: now.toISOString() };
      emit({ type: events.STORY_PUBLISHED, payload });
      queued = await requestAnalysis(em, story, ctx.correlationId, now, 'unless-done');
    });
    if (queued) this.analysisQueued();
    return result;
  }

  async archive(ctx: SubgraphContext, id: string): Promise<{ story: Story }> {
    return this.change(ctx, id, async (story, { em, emit }) => {
      rules.assertArchivable(story);
      const now = this.clock();
      Object.assign(story, { status: 'ARCHIVED', archivedAt: now, updatedAt: now });
      await cancelOpenAnalyses(em, [story.id], now);
      const payload: events.StoryArchived = { ...events.storyMetadata(story), reason: 'AUTHOR' };
      emit({ type: events.STORY_ARCHIVED, payload });
    });
  }

  async analyze(ctx: SubgraphContext, id: string): Promise<{ story: Story }> {
    let queued = false;
    const result = await this.change(ctx, id, async (story, { em }) => {
      rules.assertAnalysable(story);
      queued = await requestAnalysis(em, story, ctx.correlationId, this.clock(), 'again');
    });
    if (queued) this.analysisQueued();
    return result;
  }

  /** Loads the caller's story locked for the transaction, and applies `work` to it. */
  private async change(ctx: SubgraphContext, id: string, work: (story: Story, tx: UnitOfWork) => Promise<void>): Promise<{ story: Story }> {
    const userId = requireUser(ctx);
    if (!isUuid(id)) throw badInput('id is not a story id', 'id');
    const story = await ctx.transaction(async (tx) => {
      const story = await tx.em.findOne(Story, { id }, { lockMode: LockMode.PESSIMISTIC_WRITE });
      if (!story) throw userError('STORY_NOT_FOUND', 'There is no such story', 'id');
      if (story.authorId !== userId) throw forbidden('Only the author changes a story');
      await work(story, tx);
      return story;
    });
    return { story };
  }
}

/**
 * Queues an analysis of the story as it is now, in the caller's transaction. `again` (the
 * author asked) queues unless this very text is already queued or running; `unless-done` (a
 * publish) also skips a text already analysed. Returns whether it queued one.
 */
async function requestAnalysis(em: EntityManager, story: Story, correlationId: string, now: Date, mode: 'again' | 'unless-done'): Promise<boolean> {
  const hash = rules.contentHash(story);
  const existing = await em.findOne(StoryAnalysis, { storyId: story.id }, { lockMode: LockMode.PESSIMISTIC_WRITE });
  const inFlight = existing && existing.contentHash === hash && (existing.status === 'PENDING' || existing.status === 'RUNNING');
  if (inFlight || (mode === 'unless-done' && !rules.publishNeedsAnalysis(existing, hash))) return false;
  const request: StoryAnalysis = {
    storyId: story.id,
    status: 'PENDING',
    contentHash: hash,
    summary: null,
    genre: null,
    readingTimeMinutes: null,
    characters: [],
    emotions: [],
    provider: null,
    model: null,
    notes: [],
    failureReason: null,
    failureMessage: null,
    requestedAt: now,
    correlationId,
    startedAt: null,
    completedAt: null,
    attempts: 0,
    // A run in progress on older text finds its run replaced and drops its result.
    runId: null,
    leaseUntil: null,
  };
  if (existing) Object.assign(existing, request);
  else em.persist(em.create(StoryAnalysis, request));
  return true;
}
