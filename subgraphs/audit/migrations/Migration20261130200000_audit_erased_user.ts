import { SchemaMigration } from '../../../platform/db/migration.js';

/**
 * Users whose events the log keeps redacted (audit's erasure step): an event about them that
 * arrives after the erasure, or again in a replay, is stored redacted too.
 */
export class Migration20261130200000_audit_erased_user extends SchemaMigration {
  override up(): void {
    this.sql(
      `create table "erased_user" (
        "user_id" uuid primary key,
        "erased_at" timestamptz not null
      )`,
    );
  }
}
