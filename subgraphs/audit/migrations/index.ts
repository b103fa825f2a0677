import type { MigrationObject } from '@mikro-orm/postgresql';
import { Migration20261126200000_audit } from './Migration20261126200000_audit.js';

/** Applied in this order; append, never edit a migration that has shipped. */
export const auditMigrations: MigrationObject[] = [
  { name: 'Migration20261126200000_audit', class: Migration20261126200000_audit },
];
