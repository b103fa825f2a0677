import type { EntityManager } from '@mikro-orm/postgresql';
import type { ConsumerDefinition, EventHandlerContext } from '../events/consumer.types.js';
import type { EventEnvelope, NewEvent } from '../events/envelope.js';
import type { UserErasureCompleted } from '../events/erasure.js';

/**
 * What a step's events module says of the saga (as billing.events.ts does): the types it
 * consumes, whether an event asks it to erase, and its report.
 */
export interface ErasureStepEvents {
  USER_DELETED: string;
  USER_ERASURE_REQUESTED: string;
  erasureAsked(event: EventEnvelope): { userId: string; at: Date } | null;
  erasureCompleted(userId: string): NewEvent<UserErasureCompleted>;
}

/**
 * The consumer of a step of the user deletion saga that refuses an erased user's writes
 * (store.ts): asked (user.deleted, or identity's request naming it), it takes the user's lock and
 * marks them erased (from then on a write that would create data for them with an access token
 * still valid is refused), runs the step's `erase`, and reports, all in one transaction.
 * `erase` must be idempotent: asked again, it finds nothing left, and the step reports again.
 */
export function erasureStepConsumer(step: {
  name: string;
  events: ErasureStepEvents;
  beginErasure(em: EntityManager, userId: string, at: Date): Promise<void>;
  erase(ctx: EventHandlerContext, userId: string): Promise<void>;
}): ConsumerDefinition {
  const { events } = step;
  return {
    name: step.name,
    types: [events.USER_DELETED, events.USER_ERASURE_REQUESTED],
    async handle(event, ctx) {
      const erasure = events.erasureAsked(event);
      if (!erasure) return;
      await step.beginErasure(ctx.em, erasure.userId, erasure.at);
      await step.erase(ctx, erasure.userId);
      ctx.emit(events.erasureCompleted(erasure.userId));
    },
  };
}
