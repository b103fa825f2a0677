import { SchemaMigration } from '../../../platform/db/migration.js';
import { CONSUMER_DDL } from '../../../platform/events/inbox.js';
import { OUTBOX_DDL } from '../../../platform/events/outbox.entity.js';

export class Migration20261126500000_narration extends SchemaMigration {
  override up(): void {
    this.sql(
      ...OUTBOX_DDL,
      ...CONSUMER_DDL,
      `create table "voice" (
        "id" uuid primary key,
        "user_id" uuid not null unique,
        "status" text not null check ("status" in ('COLLECTING', 'CLONING', 'CLONED', 'FAILED')),
        "provider" text null,
        "provider_voice_id" text null,
        "cloned_at" timestamptz null,
        "error" text null,
        "updated_at" timestamptz not null
      )`,
      `create table "voice_sample" (
        "id" uuid primary key,
        "user_id" uuid not null,
        "kind" text not null check ("kind" in ('EMOTION', 'SOUND', 'MODULATION')),
        "label" text not null,
        "content_type" text not null,
        "storage_key" text not null,
        "size_bytes" integer null,
        "uploaded_at" timestamptz null,
        "locked" boolean not null default false,
        "created_at" timestamptz not null
      )`,
      `create index "voice_sample_user_idx" on "voice_sample" ("user_id", "created_at" desc)`,
      `create table "narration_job" (
        "id" uuid primary key,
        "user_id" uuid not null,
        "story_id" uuid not null,
        "voice_kind" text not null check ("voice_kind" in ('CLONED', 'STOCK')),
        "stock_voice" text null,
        "provider_voice_id" text null,
        "status" text not null check ("status" in ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED')),
        "progress" double precision not null default 0,
        "parts_total" integer null,
        "parts_done" integer not null default 0,
        "error" text null,
        "audio_key" text null,
        "audio_content_type" text null,
        "duration_ms" integer null,
        "attempts" integer not null default 0,
        "correlation_id" text null,
        "created_at" timestamptz not null,
        "started_at" timestamptz null,
        "completed_at" timestamptz null
      )`,
      `create index "narration_job_story_idx" on "narration_job" ("story_id", "created_at" desc)`,
      // What a starting worker queues again (the in-process queue does not outlive its process).
      `create index "narration_job_open_idx" on "narration_job" ("created_at") where "status" in ('QUEUED', 'RUNNING')`,
    );
  }
}
