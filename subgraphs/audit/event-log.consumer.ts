import type { EntityManager } from '@mikro-orm/postgresql';
import type { ConsumerDefinition } from '../../platform/events/consumer.types.js';
import type { EventEnvelope } from '../../platform/events/envelope.js';
import { EventLogEntry } from './audit.entities.js';
import { tableOf } from '../../platform/db/tables.js';
import { erasedAmong } from './erased-users.js';
import { redactPayload, uuidsIn } from './redaction.rules.js';

/** The event_log table, schema-qualified: raw SQL does not get the ORM's schema by itself. */
const eventLogTable = (em: EntityManager) => tableOf(em, 'event_log');

/**
 * Keeps every domain event in the event log, as it arrived, except the personal data of users
 * audit's erasure step has erased (erasure.consumer.ts). A replay (`npm run replay --
 * audit-event-log`) empties the table and feeds the stream through `handle` again.
 */
export const eventLogConsumer: ConsumerDefinition = {
  name: 'audit-event-log',
  types: ['>'],
  async handle(event: EventEnvelope, { em }) {
    await store(em, [event]);
  },
  /** The same rows, one statement for the whole batch: the log takes every event of the platform. */
  async handleMany(events, { em }) {
    await store(em, events);
  },
  async reset(em) {
    await em.nativeDelete(EventLogEntry, {});
  },
};

/**
 * Stores the events, those about an erased user (their user, or one their payload names)
 * redacted as the erasure redacted the ones before them (erased-users.ts).
 */
async function store(em: EntityManager, events: EventEnvelope[]): Promise<void> {
  const named = events.map((event) => uuidsIn(event.userId, event.payload));
  const erased = await erasedAmong(em, [...new Set(named.flat())]);
  const rows = events.map((event, i) => (named[i]!.some((id) => erased.has(id)) ? { ...event, payload: redactPayload(event.payload) } : event));
    // One insert, no ORM unit of work. The inbox already keeps a redelivered event out;
    // `on conflict do nothing` also lets an event the table already holds pass without
    // failing (a replay run over rows that were not reset, say). The payload goes as JSON
    // text so that any JSON value, a bare string or null included, is stored as that value
    // (the ORM would store a JS null as SQL NULL).
  const row = `(?, ?, ?, date_trunc('milliseconds', ?::timestamptz), ?, ?, ?, ?, ?::jsonb)`;
  await em.execute(
    `insert into ${eventLogTable(em)}
      ("id", "type", "service_name", "timestamp", "version", "correlation_id", "causation_id", "user_id", "payload")
      values ${rows.map(() => row).join(', ')}
      on conflict ("id") do nothing`,
    rows.flatMap(columns),
    'run',
  );
}

/**
 * An envelope as an event_log row (the row is a pure function of the envelope and of who was
 * erased, so replays match). Timestamps are kept to the millisecond, as JavaScript reads them:
 * page cursors compare them exactly, so a publisher's microseconds must not make rows fall between pages.
 */
function columns(event: EventEnvelope): unknown[] {
  return [event.id, event.type, event.serviceName, event.timestamp, event.version, event.correlationId, event.causationId, event.userId, JSON.stringify(event.payload)];
}
