import type { ConsumerDefinition } from '../../platform/events/consumer.types.js';
import { upsertVersioned } from '../../platform/db/versioned-upsert.js';
import { VideoEntitlement } from './video.entities.js';
import * as events from './video.events.js';
import { videosPerMonthOf } from './video.rules.js';

/**
 * Video's view of what each user's plan allows, from billing's subscription.* events. A read
 * model of the stream: `npm run replay -- video-projections` rebuilds it.
 */
export const projectionsConsumer: ConsumerDefinition = {
  name: 'video-projections',
  types: [events.SUBSCRIPTION_EVENTS],
  async handle(event, ctx) {
    const { userId, membershipVersion, entitlements } = event.payload as events.SubscriptionChange;
    await upsertVersioned(
      ctx.em,
      'video_entitlement',
      { column: 'user_id', value: userId },
      { tier: entitlements.tier, videos_per_month: videosPerMonthOf(entitlements, event.type === events.SUBSCRIPTION_CANCELLED) },
      { membershipVersion: membershipVersion ?? 0, asOf: new Date(event.timestamp) },
    );
  },
  async reset(em) {
    await em.nativeDelete(VideoEntitlement, {});
  },
};
