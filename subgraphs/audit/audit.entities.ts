import { EntitySchema } from '@mikro-orm/postgresql';

/**
 * One domain event as the event log keeps it: the envelope, column for column. The row is a
 * pure function of the envelope (no local clock, no serial), so replaying the stream into an
 * emptied table gives back the same rows.
 */
export interface EventLogEntry {
  id: string;
  type: string;
  serviceName: string;
  timestamp: Date;
  version: number;
  correlationId: string | null;
  causationId: string | null;
  userId: string | null;
  payload: unknown;
}

export const EventLogEntry = new EntitySchema<EventLogEntry>({
  name: 'EventLogEntry',
  tableName: 'event_log',
  properties: {
    id: { type: 'uuid', primary: true },
    type: { type: 'string' },
    serviceName: { type: 'string', fieldName: 'service_name' },
    timestamp: { type: 'Date' },
    version: { type: 'integer' },
    correlationId: { type: 'string', nullable: true, fieldName: 'correlation_id' },
    causationId: { type: 'string', nullable: true, fieldName: 'causation_id' },
    userId: { type: 'uuid', nullable: true, fieldName: 'user_id' },
    payload: { type: 'json' },
  },
});

export const auditEntities = [EventLogEntry];
