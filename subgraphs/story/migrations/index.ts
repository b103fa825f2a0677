import type { MigrationObject } from '@mikro-orm/postgresql';
import { Migration20261126300000_story } from './Migration20261126300000_story.js';

/** Applied in this order; append, never edit a migration that has shipped. */
export const storyMigrations: MigrationObject[] = [{ name: 'Migration20261126300000_story', class: Migration20261126300000_story }];
