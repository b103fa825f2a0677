import type { MigrationObject } from '@mikro-orm/postgresql';
import { Migration20261126800000_collaboration } from './Migration20261126800000_collaboration.js';
import { Migration20261130100000_collaboration_deleted_user } from './Migration20261130100000_collaboration_deleted_user.js';

/** Applied in this order; append, never edit a migration that has shipped. */
export const collaborationMigrations: MigrationObject[] = [
  { name: 'Migration20261126800000_collaboration', class: Migration20261126800000_collaboration },
  { name: 'Migration20261130100000_collaboration_deleted_user', class: Migration20261130100000_collaboration_deleted_user },
];
