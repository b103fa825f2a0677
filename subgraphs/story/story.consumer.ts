import type { ConsumerDefinition, EventHandlerContext } from '../../platform/events/consumer.types.js';
import type { EventEnvelope } from '../../platform/events/envelope.js';
import { isUuid } from '../../platform/formats.js';
import { AuthorVoice, Entitlement, Story } from './story.entities.js';
import * as events from './story.events.js';

/**
 * How stories follow other domains: an account deleted archives its stories; a completed
 * collaboration marks its story. Times come from the events, so a late delivery has the effect
 * it would have had on time.
 */
export const storyConsumer: ConsumerDefinition = {
  name: 'story',
  types: [events.USER_DELETED, events.COLLABORATION_COMPLETED],
  async handle(event, ctx) {
    if (event.type === events.USER_DELETED) await archiveStoriesOf(ctx, (event.payload as events.UserDeleted).userId, new Date(event.timestamp));
    else await markCollaborationCompleted(ctx, event as EventEnvelope<events.CollaborationCompleted>);
  },
};

/**
 * The story subgraph's view of other domains' facts: what each user's plan allows (billing's
 * subscription.* events) and who has a cloned voice (narration's voice.cloned). A read model of
 * the stream: `npm run replay -- story-projections` rebuilds it.
 */
export const projectionsConsumer: ConsumerDefinition = {
  name: 'story-projections',
  types: [events.SUBSCRIPTION_EVENTS, events.VOICE_CLONED, events.USER_DELETED],
  async handle(event, ctx) {
    const at = new Date(event.timestamp);
    if (event.type.startsWith('subscription.')) {
      const { userId, entitlements } = event.payload as events.SubscriptionChange;
      await ctx.em
        .createQueryBuilder(Entitlement)
        .insert({ userId, tier: entitlements.tier, storiesPerMonth: entitlements.storiesPerMonth, collaboratorsPerStory: entitlements.collaboratorsPerStory, asOf: at })
        .onConflict('userId')
        .merge(['tier', 'storiesPerMonth', 'collaboratorsPerStory', 'asOf'])
        // An older event (a replay, a redelivery after a newer one) never undoes a newer plan.
        .where({ asOf: { $lte: at } })
        .execute('run');
    } else if (event.type === events.VOICE_CLONED) {
      if (!event.userId) return ctx.log.warn({ eventId: event.id }, 'voice.cloned without a user: ignored');
      const { voiceId } = event.payload as events.VoiceCloned;
      await ctx.em
        .createQueryBuilder(AuthorVoice)
        .insert({ userId: event.userId, voiceId, clonedAt: at })
        .onConflict('userId')
        .merge(['voiceId', 'clonedAt'])
        .where({ clonedAt: { $lte: at } })
        .execute('run');
    } else {
      // The account is gone: its voice with it. Its entitlements go to zero by subscription.cancelled.
      await ctx.em.nativeDelete(AuthorVoice, { userId: (event.payload as events.UserDeleted).userId });
    }
  },
  async reset(em) {
    await em.nativeDelete(Entitlement, {});
    await em.nativeDelete(AuthorVoice, {});
  },
};

async function archiveStoriesOf(ctx: EventHandlerContext, authorId: string, at: Date): Promise<void> {
  const stories = await ctx.em.find(Story, { authorId, status: { $ne: 'ARCHIVED' } }, { fields: ['id'] });
  if (!stories.length) return;
  await ctx.em.nativeUpdate(Story, { id: { $in: stories.map((s) => s.id) } }, { status: 'ARCHIVED', archivedAt: at, updatedAt: at });
  for (const { id } of stories) {
    const payload: events.StoryArchived = { storyId: id, reason: 'ACCOUNT_DELETED' };
    ctx.emit({ type: events.STORY_ARCHIVED, userId: authorId, payload });
  }
  ctx.log.info({ authorId, stories: stories.length }, 'archived the stories of a deleted account');
}

async function markCollaborationCompleted(ctx: EventHandlerContext, event: EventEnvelope<events.CollaborationCompleted>): Promise<void> {
  const { storyId, templateId } = event.payload;
  const story = isUuid(storyId) ? await ctx.em.findOne(Story, { id: storyId }) : null;
  if (!story) {
    ctx.log.warn({ eventId: event.id, storyId }, 'collaboration.completed for a story this subgraph does not have: ignored');
    return;
  }
  story.collaborationCompletedAt = new Date(event.timestamp);
  const payload: events.StoryCollaborationCompleted = { storyId, templateId };
  ctx.emit({ type: events.STORY_COLLABORATION_COMPLETED, userId: story.authorId, payload });
}
