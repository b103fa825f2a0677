import type { EventEnvelope } from '../../platform/events/envelope.js';
import { erasureAsked as erasureAskedOf, erasureCompleted as erasureCompletedBy } from '../../platform/events/erasure.js';

/**
 * Audit is a step of identity's user deletion saga (platform/events/erasure.ts): it redacts what
 * the event log holds of the user and reports user.erasure.completed in the same transaction.
 */
export { USER_DELETED, USER_ERASURE_COMPLETED, USER_ERASURE_REQUESTED, type UserErasureCompleted, type UserErasureRequested } from '../../platform/events/erasure.js';
const ERASURE_STEP = 'audit';
/** Whose data to erase here, and as of when; null when the event asks nothing of this subgraph. */
export const erasureAsked = (event: EventEnvelope) => erasureAskedOf(event, ERASURE_STEP);
export const erasureCompleted = (userId: string) => erasureCompletedBy(userId, ERASURE_STEP);
