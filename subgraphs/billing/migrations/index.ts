import type { MigrationObject } from '@mikro-orm/postgresql';
import { Migration20261126100000_billing } from './Migration20261126100000_billing.js';

/** Applied in this order; append, never edit a migration that has shipped. */
export const billingMigrations: MigrationObject[] = [
  { name: 'Migration20261126100000_billing', class: Migration20261126100000_billing },
];
