import { SchemaMigration } from '../../../platform/db/migration.js';

export class Migration20261126400000_membership_version extends SchemaMigration {
  override up(): void {
    this.sql(
      // Counts the changes of a membership; subscription.* events carry it, so a subgraph's
      // projection keeps the newest even when events of one transaction share a timestamp.
      `alter table "membership" add column "version" integer not null default 1`,
    );
  }
}
