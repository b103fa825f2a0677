import type { MigrationObject } from '@mikro-orm/postgresql';
import { Migration20261126500000_narration } from './Migration20261126500000_narration.js';

/** Applied in this order; append, never edit a migration that has shipped. */
export const narrationMigrations: MigrationObject[] = [{ name: 'Migration20261126500000_narration', class: Migration20261126500000_narration }];
