import type { MigrationObject } from '@mikro-orm/postgresql';
import { Migration20261126100000_billing } from './Migration20261126100000_billing.js';
import { Migration20261126400000_membership_version } from './Migration20261126400000_membership_version.js';
import { Migration20261126600000_video_usage } from './Migration20261126600000_video_usage.js';

/** Applied in this order; append, never edit a migration that has shipped. */
export const billingMigrations: MigrationObject[] = [
  { name: 'Migration20261126100000_billing', class: Migration20261126100000_billing },
  { name: 'Migration20261126400000_membership_version', class: Migration20261126400000_membership_version },
  { name: 'Migration20261126600000_video_usage', class: Migration20261126600000_video_usage },
];
