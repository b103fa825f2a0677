import { SchemaMigration } from '../../../platform/db/migration.js';
import { CONSUMER_DDL } from '../../../platform/events/inbox.js';
import { OUTBOX_DDL } from '../../../platform/events/outbox.entity.js';

export class Migration20261126100000_billing extends SchemaMigration {
  override up(): void {
    this.sql(
      ...OUTBOX_DDL,
      ...CONSUMER_DDL,
      `create table "plan" (
        "tier" text primary key check ("tier" in ('FREE', 'SILVER', 'GOLD', 'PLATINUM')),
        "name" text not null,
        "rank" integer not null unique,
        "price_cents" integer not null check ("price_cents" >= 0),
        "currency" text not null,
        "stories_per_month" integer null check ("stories_per_month" >= 0),
        "collaborators_per_story" integer null check ("collaborators_per_story" >= 0)
      )`,
      // The plans are data, not code: a price change is a later migration, not a deploy of rules.
      `insert into "plan" ("tier", "name", "rank", "price_cents", "currency", "stories_per_month", "collaborators_per_story") values
        ('FREE', 'Free', 0, 0, 'USD', 3, 1),
        ('SILVER', 'Silver', 1, 999, 'USD', 10, 5),
        ('GOLD', 'Gold', 2, 1999, 'USD', 30, 10),
        ('PLATINUM', 'Platinum', 3, 3999, 'USD', null, null)`,
      `create table "membership" (
        "user_id" uuid primary key,
        "tier" text not null references "plan" ("tier"),
        "status" text not null check ("status" in ('ACTIVE', 'CANCELLED', 'PAST_DUE')),
        "current_period_start" timestamptz not null,
        "current_period_end" timestamptz not null,
        "created_at" timestamptz not null,
        "updated_at" timestamptz not null,
        "cancelled_at" timestamptz null
      )`,
      // No foreign key to membership: usage is counted from events, which may concern a user
      // whose membership this subgraph has not created (yet).
      `create table "usage" (
        "user_id" uuid not null,
        "period_start" timestamptz not null,
        "stories_created" integer not null default 0,
        "voice_clones" integer not null default 0,
        "collaborators_invited" integer not null default 0,
        -- The highest stories limit announced (usage.limit.reached) for this period, if any.
        "stories_limit_reached" integer null,
        primary key ("user_id", "period_start")
      )`,
      // Checked at commit, as in identity: the unit of work does not order inserts of entities
      // related only by id columns.
      `create table "invoice" (
        "id" uuid primary key,
        "user_id" uuid not null references "membership" ("user_id") deferrable initially deferred,
        "tier" text not null references "plan" ("tier"),
        "amount_cents" integer not null check ("amount_cents" >= 0),
        "currency" text not null,
        "status" text not null check ("status" in ('OPEN', 'PAID', 'VOID')),
        "issued_at" timestamptz not null,
        "period_start" timestamptz not null,
        "period_end" timestamptz not null
      )`,
      // A user's invoices, newest first: each page is one range scan of this index (keyset cursors).
      `create index "invoice_user_issued_idx" on "invoice" ("user_id", "issued_at" desc, "id" desc)`,
    );
  }
}
