import { SchemaMigration } from '../../../platform/db/migration.js';

/** Narration becomes a step of the user deletion saga (erasure.consumer.ts). */
export class Migration20261129100000_narration_erasure extends SchemaMigration {
  override up(): void {
    this.sql(
      // Accounts erased: a sample, clone or narration asked for with a token still valid is refused.
      `create table "erased_user" (
        "user_id" uuid primary key,
        "erased_at" timestamptz not null
      )`,
      `create table "erasure_cleanup" (
        "id" uuid primary key,
        "user_id" uuid not null,
        "kind" text not null check ("kind" in ('BLOB', 'PROVIDER_VOICE')),
        "target" text not null,
        "provider" text null,
        "due_at" timestamptz not null,
        "attempts" integer not null default 0,
        "last_error" text null,
        "created_at" timestamptz not null
      )`,
      // The sweeper's question: what is due.
      `create index "erasure_cleanup_due_idx" on "erasure_cleanup" ("due_at")`,
      // The erasure finds a user's narrations by it (samples and the voice have theirs already).
      `create index "narration_job_user_idx" on "narration_job" ("user_id")`,
    );
  }
}
