import { EntitySchema } from '@mikro-orm/postgresql';

/**
 * One row per event a subgraph has committed but the relay may not have published yet.
 * `position` orders rows in commit-ish order for the relay; `publishedAt` marks what is done.
 */
export interface OutboxRecord {
  position: string;
  id: string;
  type: string;
  envelope: Record<string, unknown>;
  createdAt: Date;
  publishedAt: Date | null;
}

export const OutboxRecord = new EntitySchema<OutboxRecord>({
  name: 'OutboxRecord',
  tableName: 'outbox',
  properties: {
    position: { type: 'bigint', primary: true, autoincrement: true },
    id: { type: 'uuid', unique: true },
    type: { type: 'string' },
    envelope: { type: 'json' },
    createdAt: { type: 'Date', fieldName: 'created_at' },
    publishedAt: { type: 'Date', nullable: true, fieldName: 'published_at' },
  },
});

/** The DDL every subgraph's first migration includes (unqualified: SchemaMigration sets the search path). */
export const OUTBOX_DDL = [
  `create table "outbox" (
    "position" bigserial primary key,
    "id" uuid not null unique,
    "type" text not null,
    "envelope" jsonb not null,
    "created_at" timestamptz not null,
    "published_at" timestamptz null
  )`,
  // The relay only ever looks for unpublished rows: a partial index keeps that scan tiny.
  `create index "outbox_unpublished_idx" on "outbox" ("position") where "published_at" is null`,
];
