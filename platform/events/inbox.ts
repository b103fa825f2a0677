/**
 * Tables of a subgraph that consumes events (unqualified: SchemaMigration sets the search path).
 *
 * - `inbox`: one row per (consumer, event) handled. Inserted in the handling transaction, so a
 *   redelivered or re-published event finds its row and has no second effect.
 * - `dead_letter`: events a consumer gave up on after its last attempt, kept whole so an
 *   operator can replay them once the cause is fixed.
 */
export const CONSUMER_DDL = [
  `create table "inbox" (
    "consumer" text not null,
    "event_id" text not null,
    "handled_at" timestamptz not null default now(),
    primary key ("consumer", "event_id")
  )`,
  `create table "dead_letter" (
    "id" uuid primary key,
    "consumer" text not null,
    "event_id" text not null,
    "event_type" text not null,
    "envelope" jsonb not null,
    "error" text not null,
    "attempts" integer not null,
    "failed_at" timestamptz not null,
    "replayed_at" timestamptz null,
    unique ("consumer", "event_id")
  )`,
  `create index "dead_letter_open_idx" on "dead_letter" ("failed_at") where "replayed_at" is null`,
];
