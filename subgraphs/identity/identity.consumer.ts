import type { ConsumerDefinition } from '../../platform/events/consumer.types.js';
import type { EventEnvelope } from '../../platform/events/envelope.js';
import { recordErasure } from './deletion.service.js';
import * as events from './identity.events.js';

/**
 * The deletion saga's reports: each step's subgraph says it erased the user's data. No `reset`:
 * the saga is not a read model of the stream (deleteAccount writes it).
 */
export const deletionConsumer: ConsumerDefinition = {
  name: 'identity',
  types: [events.USER_ERASURE_COMPLETED],
  handle: (event, ctx) => recordErasure(ctx, event as EventEnvelope<events.UserErasureCompleted>),
};
