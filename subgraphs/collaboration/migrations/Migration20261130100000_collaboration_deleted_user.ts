import { SchemaMigration } from '../../../platform/db/migration.js';

/**
 * Accounts deleted (collaboration's erasure step): an access token outlives its account by up to
 * its lifetime, and accepting, inviting or making a template with it is refused from then on.
 */
export class Migration20261130100000_collaboration_deleted_user extends SchemaMigration {
  override up(): void {
    this.sql(
      `create table "deleted_user" (
        "user_id" uuid primary key,
        "deleted_at" timestamptz not null
      )`,
    );
  }
}
