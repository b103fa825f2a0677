import type { ConsumerDefinition } from '../../platform/events/consumer.types.js';
import { tableOf } from '../../platform/db/tables.js';
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
    // As the story subgraph's projection: billing's membership version decides which event is
    // newer, never arrival order; events from before versions existed are ordered by time.
    await ctx.em.getConnection().execute(
      `insert into ${tableOf(ctx.em, 'video_entitlement')} as e ("user_id", "tier", "videos_per_month", "membership_version", "as_of")
       values (?, ?, ?, ?, ?)
       on conflict ("user_id") do update set
         "tier" = excluded."tier", "videos_per_month" = excluded."videos_per_month",
         "membership_version" = excluded."membership_version", "as_of" = excluded."as_of"
       where e."membership_version" < excluded."membership_version"
          or (excluded."membership_version" = 0 and e."membership_version" = 0 and e."as_of" <= excluded."as_of")`,
      [userId, entitlements.tier, videosPerMonthOf(entitlements, event.type === events.SUBSCRIPTION_CANCELLED), membershipVersion ?? 0, new Date(event.timestamp)],
      'run',
      ctx.em.getTransactionContext(),
    );
  },
  async reset(em) {
    await em.nativeDelete(VideoEntitlement, {});
  },
};
