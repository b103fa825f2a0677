import type { MigrationObject } from '@mikro-orm/postgresql';
import { Migration20261126700000_video } from './Migration20261126700000_video.js';
import { Migration20261129200000_video_erasure } from './Migration20261129200000_video_erasure.js';

/** Applied in this order; append, never edit a migration that has shipped. */
export const videoMigrations: MigrationObject[] = [
  { name: 'Migration20261126700000_video', class: Migration20261126700000_video },
  { name: 'Migration20261129200000_video_erasure', class: Migration20261129200000_video_erasure },
];
