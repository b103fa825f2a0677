import type { EntityManager } from '@mikro-orm/postgresql';
import { createEnvelope, type EventEnvelope, type EventOrigin, type NewEvent } from './envelope.js';
import { OutboxRecord } from './outbox.entity.js';

/**
 * Writes events into the subgraph's outbox through the given EntityManager. Called inside the
 * same transaction as the state change, so either both commit or neither does: a crash
 * between commit and publish loses nothing, and a rolled-back change publishes nothing.
 */
export function recordEvents(em: EntityManager, origin: EventOrigin, events: NewEvent[]): EventEnvelope[] {
  const now = new Date();
  return events.map((event) => {
    const envelope = createEnvelope(event, origin, now);
    em.persist(
      em.create(OutboxRecord, {
        id: envelope.id,
        type: envelope.type,
        envelope: envelope as unknown as Record<string, unknown>,
        createdAt: now,
        publishedAt: null,
      } as OutboxRecord),
    );
    return envelope;
  });
}
