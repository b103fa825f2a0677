import { SchemaMigration } from '../../../platform/db/migration.js';
import { CONSUMER_DDL } from '../../../platform/events/inbox.js';
import { OUTBOX_DDL } from '../../../platform/events/outbox.entity.js';

const statuses = `'QUEUED', 'SENT', 'DELIVERED', 'OPENED', 'CLICKED', 'BOUNCED', 'FAILED', 'SUPPRESSED'`;
const categories = `'COLLABORATION', 'STORY', 'NARRATION', 'VIDEO', 'ACCOUNT', 'BILLING', 'MARKETING'`;
const channels = `'EMAIL', 'SMS'`;

export class Migration20261127100000_notification extends SchemaMigration {
  override up(): void {
    this.sql(
      ...OUTBOX_DDL,
      ...CONSUMER_DDL,
      `create table "recipient" (
        "user_id" uuid primary key,
        "email" text null,
        "phone" text null,
        "display_name" text not null,
        "locale" text not null,
        "tier" text not null default 'FREE',
        "membership_version" integer not null default 0,
        "registered_at" timestamptz not null,
        "deleted_at" timestamptz null,
        "pending_phone" text null,
        "phone_code_hash" text null,
        "phone_code_expires_at" timestamptz null,
        "phone_code_attempts" integer not null default 0
      )`,
      // Since when notification exists: older events (a stream read from its start) fill the directory and send nothing.
      `create table "deployment" (
        "id" integer primary key default 1 check ("id" = 1),
        "started_at" timestamptz not null default now()
      )`,
      `insert into "deployment" default values`,
      // A message to an address finds the person it belongs to.
      `create index "recipient_email_idx" on "recipient" ("email") where "email" is not null`,
      // A number belongs to one person at a time: the last who proved they hold it.
      `create unique index "recipient_phone_idx" on "recipient" ("phone") where "phone" is not null`,
      // A campaign walks its audience in user id order.
      `create index "recipient_tier_idx" on "recipient" ("tier", "user_id") where "deleted_at" is null`,
      `create table "known_story" (
        "story_id" uuid primary key,
        "author_id" uuid not null,
        "title" text not null
      )`,
      `create table "preference" (
        "user_id" uuid not null,
        "category" text not null check ("category" in (${categories})),
        "channel" text not null check ("channel" in (${channels})),
        "enabled" boolean not null,
        "updated_at" timestamptz not null,
        primary key ("user_id", "category", "channel")
      )`,
      `create table "template" (
        "id" uuid primary key,
        "key" text not null,
        "channel" text not null check ("channel" in (${channels})),
        "locale" text not null,
        "version" integer not null check ("version" > 0),
        "subject" text null,
        "body" text not null,
        "html" text null,
        "source" text not null check ("source" in ('INLINE', 'FILE', 'URL')),
        "source_ref" text null,
        "created_by" uuid null,
        "created_at" timestamptz not null,
        unique ("key", "channel", "locale", "version")
      )`,
      `create table "delivery" (
        "id" uuid primary key,
        "dedupe_key" text not null unique,
        "event_id" uuid null,
        "campaign_id" uuid null,
        "user_id" uuid null,
        "channel" text not null check ("channel" in (${channels})),
        "category" text not null check ("category" in (${categories})),
        "template_key" text not null,
        "locale" text not null,
        "address" text not null,
        "variables" jsonb not null,
        "status" text not null check ("status" in (${statuses})),
        "provider" text null,
        "provider_message_id" text null,
        "attempts" integer not null default 0,
        "next_attempt_at" timestamptz not null,
        "lease_until" timestamptz null,
        "error_code" text null,
        "error" text null,
        "correlation_id" text null,
        "created_at" timestamptz not null,
        "updated_at" timestamptz not null
      )`,
      // The send queue's question: queued deliveries that are due.
      `create index "delivery_due_idx" on "delivery" ("next_attempt_at") where "status" = 'QUEUED'`,
      `create index "delivery_user_idx" on "delivery" ("user_id", "created_at" desc, "id" desc) where "user_id" is not null`,
      `create index "delivery_campaign_idx" on "delivery" ("campaign_id") where "campaign_id" is not null`,
      // The per-recipient rate limit counts an address's recent sends.
      `create index "delivery_address_idx" on "delivery" ("channel", "address", "updated_at")`,
      // Webhooks name a delivery by the provider's message id.
      `create unique index "delivery_provider_message_idx" on "delivery" ("provider", "provider_message_id") where "provider_message_id" is not null`,
      `create table "suppression" (
        "channel" text not null check ("channel" in (${channels})),
        "address" text not null,
        "reason" text not null,
        "kind" text not null default 'BOUNCE' check ("kind" in ('BOUNCE', 'OPT_OUT')),
        "delivery_id" uuid null,
        "created_at" timestamptz not null,
        primary key ("channel", "address")
      )`,
      `create table "campaign" (
        "id" uuid primary key,
        "name" text not null,
        "template_key" text not null,
        "category" text not null check ("category" in (${categories})),
        "audience" text not null check ("audience" in ('ALL_USERS', 'PLAN_TIER')),
        "tier" text null,
        "status" text not null check ("status" in ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED')),
        "audience_size" integer not null default 0,
        "processed_users" integer not null default 0,
        "recipients" integer not null default 0,
        "cursor" uuid null,
        "lease_until" timestamptz null,
        "error" text null,
        "created_by" uuid not null,
        "created_at" timestamptz not null,
        "started_at" timestamptz null,
        "completed_at" timestamptz null
      )`,
      `create index "campaign_open_idx" on "campaign" ("created_at") where "status" in ('QUEUED', 'RUNNING')`,
    );
  }
}
