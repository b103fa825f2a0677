import { SchemaMigration } from '../../../platform/db/migration.js';
import { CONSUMER_DDL } from '../../../platform/events/inbox.js';
import { OUTBOX_DDL } from '../../../platform/events/outbox.entity.js';

export class Migration20261126800000_collaboration extends SchemaMigration {
  override up(): void {
    this.sql(
      ...OUTBOX_DDL,
      ...CONSUMER_DDL,
      `create table "roleplay_template" (
        "id" uuid primary key,
        "story_id" uuid not null,
        "author_id" uuid not null,
        "story_title" text not null,
        "status" text not null check ("status" in ('OPEN', 'COMPLETED')),
        "created_at" timestamptz not null,
        "completed_at" timestamptz null
      )`,
      `create index "roleplay_template_author_idx" on "roleplay_template" ("author_id")`,
      `create table "roleplay_character" (
        "id" uuid primary key,
        "template_id" uuid not null references "roleplay_template" ("id") on delete cascade,
        "name" text not null,
        "description" text not null,
        "position" integer not null,
        unique ("template_id", "position")
      )`,
      `create table "invitation" (
        "id" uuid primary key,
        "template_id" uuid not null references "roleplay_template" ("id") on delete cascade,
        "character_id" uuid not null references "roleplay_character" ("id") on delete cascade,
        "token_hash" text not null unique,
        "invitee_name" text not null,
        "email" text null,
        "phone" text null,
        "status" text not null check ("status" in ('PENDING', 'ACCEPTED', 'EXPIRED', 'REVOKED')),
        "invited_by" uuid not null,
        "sent_at" timestamptz not null,
        "expires_at" timestamptz not null,
        "ended_at" timestamptz null
      )`,
      `create index "invitation_template_idx" on "invitation" ("template_id", "sent_at" desc)`,
      // The sweep's question: pending invitations past their time.
      `create index "invitation_pending_idx" on "invitation" ("expires_at") where "status" = 'PENDING'`,
      `create index "invitation_invited_by_idx" on "invitation" ("invited_by") where "status" = 'PENDING'`,
      `create table "participant" (
        "id" uuid primary key,
        "template_id" uuid not null references "roleplay_template" ("id") on delete cascade,
        "character_id" uuid not null unique references "roleplay_character" ("id") on delete cascade,
        "invitation_id" uuid not null unique references "invitation" ("id") on delete cascade,
        "user_id" uuid null,
        "is_guest" boolean not null,
        "display_name" text not null,
        "created_at" timestamptz not null
      )`,
      `create index "participant_template_idx" on "participant" ("template_id")`,
      `create unique index "participant_user_idx" on "participant" ("template_id", "user_id") where "user_id" is not null`,
      `create table "submission" (
        "id" uuid primary key,
        "template_id" uuid not null references "roleplay_template" ("id") on delete cascade,
        "participant_id" uuid not null unique references "participant" ("id") on delete cascade,
        "content" text not null,
        "submitted_at" timestamptz not null
      )`,
      `create table "collaboration_entitlement" (
        "user_id" uuid primary key,
        "tier" text not null,
        "collaborators_per_story" integer null,
        "membership_version" integer not null default 0,
        "as_of" timestamptz not null
      )`,
    );
  }
}
