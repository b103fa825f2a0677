import type { MigrationObject } from '@mikro-orm/postgresql';
import { Migration20261126000000_identity } from './Migration20261126000000_identity.js';

/** Applied in this order; append, never edit a migration that has shipped. */
export const identityMigrations: MigrationObject[] = [
  { name: 'Migration20261126000000_identity', class: Migration20261126000000_identity },
];
