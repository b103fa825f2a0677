import type { ConsumerDefinition, EventHandlerContext } from '../../platform/events/consumer.types.js';
import type { EventEnvelope } from '../../platform/events/envelope.js';
import { isUuid } from '../../platform/formats.js';
import { AuthorVoice, Entitlement, Story } from './story.entities.js';
import * as events from './story.events.js';
import { cancelOpenAnalyses, isDeletedAuthor, lockAuthor, markDeletedAuthor } from './story.store.js';
import { tableOf } from '../../platform/db/tables.js';
import { upsertVersioned } from '../../platform/db/versioned-upsert.js';

/**
 * How stories follow other domains: an account deleted archives its stories (story's step of
 * the deletion saga, asked again by user.erasure.requested if it did not report); a completed
 * collaboration marks its story. Times come from the events, so a late delivery has the effect
 * it would have had on time.
 */
export const storyConsumer: ConsumerDefinition = {
  name: 'story',
  types: [events.USER_DELETED, events.USER_ERASURE_REQUESTED, events.COLLABORATION_COMPLETED],
  async handle(event, ctx) {
    if (event.type === events.COLLABORATION_COMPLETED) return markCollaborationCompleted(ctx, event as EventEnvelope<events.CollaborationCompleted>);
    const erasure = events.erasureAsked(event);
    if (erasure) await eraseAuthor(ctx, erasure.userId, erasure.at);
  },
};

/**
 * The story subgraph's view of other domains' facts: what each user's plan allows (billing's
 * subscription.* events) and who has a cloned voice (narration's voice.cloned). A read model of
 * the stream: `npm run replay -- story-projections` rebuilds it.
 */
export const projectionsConsumer: ConsumerDefinition = {
  name: 'story-projections',
  types: [events.SUBSCRIPTION_EVENTS, events.VOICE_CLONED],
  async handle(event, ctx) {
    const at = new Date(event.timestamp);
    if (event.type.startsWith('subscription.')) {
      const { userId, membershipVersion, entitlements } = event.payload as events.SubscriptionChange;
      // billing's membership version decides which event is newer, never arrival order.
      await upsertVersioned(
        ctx.em,
        'entitlement',
        { column: 'user_id', value: userId },
        { tier: entitlements.tier, stories_per_month: entitlements.storiesPerMonth, collaborators_per_story: entitlements.collaboratorsPerStory },
        { membershipVersion: membershipVersion ?? 0, asOf: at },
      );
    } else if (event.type === events.VOICE_CLONED) {
      if (!event.userId) return ctx.log.warn({ eventId: event.id }, 'voice.cloned without a user: ignored');
      const { voiceId } = event.payload as events.VoiceCloned;
      // A voice.cloned delivered after the account was erased (a replica, a dead letter replayed)
      // must not store the voice again. The author's lock orders this against the erasure.
      await lockAuthor(ctx.em, event.userId);
      if (await isDeletedAuthor(ctx.em, event.userId)) return;
      await ctx.em
        .createQueryBuilder(AuthorVoice)
        .insert({ userId: event.userId, voiceId, clonedAt: at })
        .onConflict('userId')
        .merge(['voiceId', 'clonedAt'])
        .where({ clonedAt: { $lte: at } })
        .execute('run');
    }
    // user.deleted: the story consumer's erasure forgets the voice (once) and records the author
    // deleted, which keeps a late voice.cloned out. Entitlements go to zero by subscription.cancelled.

  },
  async reset(em) {
    await em.nativeDelete(Entitlement, {});
    await em.nativeDelete(AuthorVoice, {});
  },
};

/**
 * What story holds of a deleted account, erased (idempotent: asked again, it finds nothing left
 * to do and reports again): its stories archived, its cloned voice forgotten (the author is
 * marked deleted first, so the projection stores it no more), then the report to identity's saga.
 */
async function eraseAuthor(ctx: EventHandlerContext, authorId: string, at: Date): Promise<void> {
  await archiveStoriesOf(ctx, authorId, at);
  await ctx.em.nativeDelete(AuthorVoice, { userId: authorId });
  ctx.emit(events.erasureCompleted(authorId));
}

/**
 * Archives every story of a deleted account, in one statement (a story its author archived
 * meanwhile is not archived twice), and marks the author deleted under the lock creates take:
 * a create with a token still valid cannot add a story afterwards.
 */
async function archiveStoriesOf(ctx: EventHandlerContext, authorId: string, at: Date): Promise<void> {
  await lockAuthor(ctx.em, authorId);
  await markDeletedAuthor(ctx.em, authorId, at);
  const archived = await ctx.em.getConnection().execute<{ id: string; title: string; category: string | null; genre: string | null }[]>(
    `update ${tableOf(ctx.em, 'story')} set "status" = 'ARCHIVED', "archived_at" = ?, "updated_at" = ?
      where "author_id" = ? and "status" <> 'ARCHIVED'
      returning "id", "title", "category", "genre"`,
    [at, at, authorId],
    'all',
    ctx.em.getTransactionContext(),
  );
  await cancelOpenAnalyses(ctx.em, archived.map((s) => s.id), at);
  for (const story of archived) {
    const payload: events.StoryArchived = { ...events.storyMetadata(story), reason: 'ACCOUNT_DELETED' };
    ctx.emit({ type: events.STORY_ARCHIVED, userId: authorId, payload });
  }
  if (archived.length) ctx.log.info({ authorId, stories: archived.length }, 'archived the stories of a deleted account');
}

async function markCollaborationCompleted(ctx: EventHandlerContext, event: EventEnvelope<events.CollaborationCompleted>): Promise<void> {
  const { storyId, templateId } = event.payload;
  const story = isUuid(storyId) ? await ctx.em.findOne(Story, { id: storyId }) : null;
  if (!story) {
    ctx.log.warn({ eventId: event.id, storyId }, 'collaboration.completed for a story this subgraph does not have: ignored');
    return;
  }
  const at = new Date(event.timestamp);
  // The latest completion stands, whatever order the events arrive in.
  if (!story.collaborationCompletedAt || story.collaborationCompletedAt < at) story.collaborationCompletedAt = at;
  const payload: events.StoryCollaborationCompleted = { storyId, templateId };
  ctx.emit({ type: events.STORY_COLLABORATION_COMPLETED, userId: story.authorId, payload });
}
