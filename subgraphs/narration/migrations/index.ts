import type { MigrationObject } from '@mikro-orm/postgresql';
import { Migration20261126500000_narration } from './Migration20261126500000_narration.js';
import { Migration20261129100000_narration_erasure } from './Migration20261129100000_narration_erasure.js';

/** Applied in this order; append, never edit a migration that has shipped. */
export const narrationMigrations: MigrationObject[] = [
  { name: 'Migration20261126500000_narration', class: Migration20261126500000_narration },
  { name: 'Migration20261129100000_narration_erasure', class: Migration20261129100000_narration_erasure },
];
