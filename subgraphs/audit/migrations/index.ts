import type { MigrationObject } from '@mikro-orm/postgresql';
import { Migration20261126200000_audit } from './Migration20261126200000_audit.js';
import { Migration20261130200000_audit_erased_user } from './Migration20261130200000_audit_erased_user.js';

/** Applied in this order; append, never edit a migration that has shipped. */
export const auditMigrations: MigrationObject[] = [
  { name: 'Migration20261126200000_audit', class: Migration20261126200000_audit },
  { name: 'Migration20261130200000_audit_erased_user', class: Migration20261130200000_audit_erased_user },
];
