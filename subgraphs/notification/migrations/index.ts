import type { MigrationObject } from '@mikro-orm/postgresql';
import { Migration20261127100000_notification } from './Migration20261127100000_notification.js';

/** Applied in this order; append, never edit a migration that has shipped. */
export const notificationMigrations: MigrationObject[] = [{ name: 'Migration20261127100000_notification', class: Migration20261127100000_notification }];
