import { SchemaMigration } from '../../../platform/db/migration.js';
import { OUTBOX_DDL } from '../../../platform/events/outbox.entity.js';

export class Migration20261126000000_identity extends SchemaMigration {
  override up(): void {
    this.sql(
      ...OUTBOX_DDL,
      `create table "user" (
        "id" uuid primary key,
        "email" text not null,
        "email_verified" boolean not null default false,
        "password_hash" text null,
        "display_name" text not null,
        "avatar_url" text null,
        "locale" text not null,
        "role" text not null check ("role" in ('USER', 'ADMIN')),
        "created_at" timestamptz not null,
        "updated_at" timestamptz not null
      )`,
      // Emails are stored lower-cased; the unique index is what settles concurrent sign-ups.
      `create unique index "user_email_key" on "user" ("email")`,
      // Foreign keys are checked at commit: the ORM's unit of work does not order inserts of
      // entities that are related only by id columns.
      `create table "provider_link" (
        "id" uuid primary key,
        "user_id" uuid not null references "user" ("id") on delete cascade deferrable initially deferred,
        "provider" text not null,
        "subject" text not null,
        "linked_at" timestamptz not null,
        unique ("provider", "subject"),
        unique ("user_id", "provider")
      )`,
      `create table "refresh_token" (
        "id" uuid primary key,
        "user_id" uuid not null references "user" ("id") on delete cascade deferrable initially deferred,
        "family_id" uuid not null,
        "token_hash" text not null unique,
        "created_at" timestamptz not null,
        "expires_at" timestamptz not null,
        "rotated_at" timestamptz null,
        "revoked_at" timestamptz null
      )`,
      `create index "refresh_token_family_idx" on "refresh_token" ("family_id")`,
      `create table "signing_key" (
        "kid" text primary key,
        "alg" text not null,
        "private_jwk" jsonb not null,
        "public_jwk" jsonb not null,
        "created_at" timestamptz not null
      )`,
    );
  }
}
