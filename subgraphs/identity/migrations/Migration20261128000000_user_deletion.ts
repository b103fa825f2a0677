import { SchemaMigration } from '../../../platform/db/migration.js';
import { CONSUMER_DDL } from '../../../platform/events/inbox.js';

/** The user deletion saga: identity now consumes events (each step's user.erasure.completed). */
export class Migration20261128000000_user_deletion extends SchemaMigration {
  override up(): void {
    this.sql(
      ...CONSUMER_DDL,
      `alter table "user" add column "deletion_requested_at" timestamptz null`,
      // No foreign key to "user": the saga outlives the row it deletes.
      `create table "user_deletion" (
        "user_id" uuid primary key,
        "status" text not null check ("status" in ('IN_PROGRESS', 'COMPLETED')),
        "requested_at" timestamptz not null,
        "completed_at" timestamptz null,
        "correlation_id" text null
      )`,
      // Deferred, like the other foreign keys here: the unit of work does not order the inserts.
      `create table "user_deletion_step" (
        "user_id" uuid not null references "user_deletion" ("user_id") on delete cascade deferrable initially deferred,
        "service" text not null,
        "status" text not null check ("status" in ('PENDING', 'DONE')),
        "attempts" integer not null,
        "requested_at" timestamptz not null,
        "done_at" timestamptz null,
        primary key ("user_id", "service")
      )`,
      // What the retry loop looks for: steps still waiting, oldest request first.
      `create index "user_deletion_step_pending_idx" on "user_deletion_step" ("requested_at") where "status" = 'PENDING'`,
    );
  }
}
