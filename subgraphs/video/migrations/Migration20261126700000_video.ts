import { SchemaMigration } from '../../../platform/db/migration.js';
import { CONSUMER_DDL } from '../../../platform/events/inbox.js';
import { OUTBOX_DDL } from '../../../platform/events/outbox.entity.js';

export class Migration20261126700000_video extends SchemaMigration {
  override up(): void {
    this.sql(
      ...OUTBOX_DDL,
      ...CONSUMER_DDL,
      `create table "video_job" (
        "id" uuid primary key,
        "user_id" uuid not null,
        "story_id" uuid not null,
        "style" text null,
        "aspect_ratio" text not null check ("aspect_ratio" in ('16:9', '9:16', '1:1')),
        "duration_seconds" integer not null check ("duration_seconds" > 0),
        "providers" jsonb not null,
        "source" jsonb not null,
        "status" text not null check ("status" in ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED')),
        "progress" double precision not null check ("progress" between 0 and 1),
        "provider" text null,
        "error" text null,
        "video_key" text null,
        "video_content_type" text null,
        "size_bytes" bigint null,
        "runs" integer not null default 0,
        "lease_until" timestamptz null,
        "failures" integer not null default 0,
        "enqueued_at" timestamptz null,
        "correlation_id" text null,
        "created_at" timestamptz not null,
        "started_at" timestamptz null,
        "completed_at" timestamptz null
      )`,
      // The plan check counts a user's jobs of the month; story pages list a story's videos.
      `create index "video_job_user_idx" on "video_job" ("user_id", "created_at" desc)`,
      `create index "video_job_story_idx" on "video_job" ("story_id", "created_at" desc)`,
      // The sweeper's question: open jobs whose worker is gone.
      `create index "video_job_open_idx" on "video_job" ("status", "lease_until") where "status" in ('QUEUED', 'RUNNING')`,
      `create table "video_attempt" (
        "job_id" uuid not null references "video_job" ("id") on delete cascade,
        "seq" integer not null check ("seq" >= 0),
        "provider" text not null,
        "status" text not null check ("status" in ('RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT')),
        "task" jsonb null,
        "progress" double precision null,
        "result_url" text null,
        "error" text null,
        "error_code" text null,
        "started_at" timestamptz not null,
        "task_created_at" timestamptz null,
        "finished_at" timestamptz null,
        primary key ("job_id", "seq")
      )`,
      `create table "video_entitlement" (
        "user_id" uuid primary key,
        "tier" text not null,
        "videos_per_month" integer null,
        "membership_version" integer not null default 0,
        "as_of" timestamptz not null
      )`,
    );
  }
}
