import type { EntityManager } from '@mikro-orm/postgresql';
import { createEnvelope, type EventEnvelope, type EventOrigin, type NewEvent } from './envelope.js';
import { tableOf } from '../db/tables.js';

/**
 * Writes events into the subgraph's outbox, in the transaction `em` is in: called inside the
 * same transaction as the state change, so either both commit or neither does. A crash between
 * commit and publish loses nothing, and a rolled-back change publishes nothing.
 *
 * One multi-row insert, not entities through the unit of work: change-tracking JSON envelopes
 * was most of the ORM's cost of a commit with events (bench/events.ts).
 */
export async function recordEvents(em: EntityManager, origin: EventOrigin, events: NewEvent[]): Promise<EventEnvelope[]> {
  if (!events.length) return [];
  const now = new Date();
  const envelopes = events.map((event) => createEnvelope(event, origin, now));
  await em.getConnection().execute(
    `insert into ${tableOf(em, 'outbox')} ("id", "type", "envelope", "created_at")
     values ${envelopes.map(() => '(?, ?, ?::jsonb, ?)').join(', ')}`,
    envelopes.flatMap((envelope) => [envelope.id, envelope.type, JSON.stringify(envelope), now]),
    'run',
    em.getTransactionContext(),
  );
  return envelopes;
}
