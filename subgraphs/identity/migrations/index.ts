import type { MigrationObject } from '@mikro-orm/postgresql';
import { Migration20261126000000_identity } from './Migration20261126000000_identity.js';
import { Migration20261128000000_user_deletion } from './Migration20261128000000_user_deletion.js';

/** Applied in this order; append, never edit a migration that has shipped. */
export const identityMigrations: MigrationObject[] = [
  { name: 'Migration20261126000000_identity', class: Migration20261126000000_identity },
  { name: 'Migration20261128000000_user_deletion', class: Migration20261128000000_user_deletion },
];
