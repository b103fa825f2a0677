import type { ConsumerDefinition } from '../../platform/events/consumer.types.js';
import * as events from './audit.events.js';
import { eraseUser } from './erased-users.js';
import { isUuid } from './redaction.rules.js';

/**
 * Audit's step of the deletion saga (asked again by user.erasure.requested if it did not
 * report): the event log keeps the user's events, as the operators' record of what happened,
 * but no longer their personal data (redaction.rules.ts); events about them that arrive later
 * are stored redacted (event-log.consumer.ts). Its own durable consumer, so that a backlog of
 * the event log does not hold the saga up.
 */
export const erasureConsumer: ConsumerDefinition = {
  name: 'audit-erasure',
  types: [events.USER_DELETED, events.USER_ERASURE_REQUESTED],
  async handle(event, ctx) {
    const erasure = events.erasureAsked(event);
    if (!erasure) return;
    // An id that is no uuid names nobody the log could hold (its user_id column is a uuid).
    if (isUuid(erasure.userId)) {
      const redacted = await eraseUser(ctx.em, erasure.userId.toLowerCase(), erasure.at);
      ctx.log.info({ userId: erasure.userId, redacted }, 'event log redacted for a deleted user');
    }
    ctx.emit(events.erasureCompleted(erasure.userId));
  },
};
