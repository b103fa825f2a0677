import { SchemaMigration } from '../../../platform/db/migration.js';
import { CONSUMER_DDL } from '../../../platform/events/inbox.js';
import { OUTBOX_DDL } from '../../../platform/events/outbox.entity.js';

export class Migration20261126200000_audit extends SchemaMigration {
  override up(): void {
    this.sql(
      ...OUTBOX_DDL,
      ...CONSUMER_DDL,
      `create table "event_log" (
        "id" uuid primary key,
        "type" text not null,
        "service_name" text not null,
        "timestamp" timestamptz not null,
        "version" integer not null,
        "correlation_id" text null,
        "causation_id" text null,
        "user_id" uuid null,
        "payload" jsonb not null
      )`,
      // The log is read newest first, in pages keyed by (timestamp, id), with or without a user.
      `create index "event_log_timestamp_idx" on "event_log" ("timestamp" desc, "id" desc)`,
      `create index "event_log_user_idx" on "event_log" ("user_id", "timestamp" desc, "id" desc)`,
    );
  }
}
