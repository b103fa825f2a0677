import { SchemaMigration } from '../../../platform/db/migration.js';
import { CONSUMER_DDL } from '../../../platform/events/inbox.js';
import { OUTBOX_DDL } from '../../../platform/events/outbox.entity.js';

export class Migration20261126300000_story extends SchemaMigration {
  override up(): void {
    this.sql(
      ...OUTBOX_DDL,
      ...CONSUMER_DDL,
      `create table "story" (
        "id" uuid primary key,
        "author_id" uuid not null,
        "title" text not null check (length("title") between 1 and 200),
        "content" text not null check (length("content") <= 200000),
        "status" text not null check ("status" in ('DRAFT', 'PUBLISHED', 'ARCHIVED')),
        "category" text null,
        "genre" text null,
        "tone" text null,
        "audience" text null,
        "language" text null,
        "word_count" integer not null,
        "created_at" timestamptz not null,
        "updated_at" timestamptz not null,
        "published_at" timestamptz null,
        "archived_at" timestamptz null,
        "collaboration_completed_at" timestamptz null,
        check (("status" = 'DRAFT') = ("published_at" is null) or "status" = 'ARCHIVED')
      )`,
      // An author's stories newest first (User.stories pages), and the month's count for the plan limit.
      `create index "story_author_created_idx" on "story" ("author_id", "created_at" desc, "id" desc)`,
      // The public feed: one range scan per page, over published stories only.
      `create index "story_published_idx" on "story" ("published_at" desc, "id" desc) where "status" = 'PUBLISHED'`,
      `create table "story_analysis" (
        "story_id" uuid primary key references "story" ("id") on delete cascade,
        "status" text not null check ("status" in ('PENDING', 'RUNNING', 'COMPLETED', 'FAILED')),
        "content_hash" text not null,
        "summary" text null,
        "genre" text null,
        "reading_time_minutes" integer null,
        "characters" jsonb not null default '[]',
        "emotions" jsonb not null default '[]',
        "provider" text null,
        "model" text null,
        "notes" jsonb not null default '[]',
        "failure_reason" text null,
        "failure_message" text null,
        "requested_at" timestamptz not null,
        "correlation_id" text null,
        "started_at" timestamptz null,
        "completed_at" timestamptz null,
        "attempts" integer not null default 0,
        "run_id" uuid null,
        "lease_until" timestamptz null
      )`,
      // What workers claim: only the few open jobs are in this index.
      `create index "story_analysis_open_idx" on "story_analysis" ("requested_at") where "status" in ('PENDING', 'RUNNING')`,
      `create table "entitlement" (
        "user_id" uuid primary key,
        "tier" text not null,
        "stories_per_month" integer null,
        "collaborators_per_story" integer null,
        "membership_version" integer not null,
        "as_of" timestamptz not null
      )`,
      // Accounts deleted (user.deleted): a create racing the archiving of their stories is refused.
      `create table "deleted_author" (
        "user_id" uuid primary key,
        "deleted_at" timestamptz not null
      )`,
      `create table "author_voice" (
        "user_id" uuid primary key,
        "voice_id" text not null,
        "cloned_at" timestamptz not null
      )`,
    );
  }
}
