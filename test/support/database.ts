import { randomBytes } from 'node:crypto';
import type { MikroORM } from '@mikro-orm/postgresql';
import pg from 'pg';
import { migrate, openDatabase } from '../../platform/db/database.js';
import { createLogger, type Logger } from '../../platform/log.js';
import type { SubgraphModule } from '../../platform/subgraph/module.js';

/** The server tests use: TEST_DATABASE_URL, else the machine's PostgreSQL on 127.0.0.1:5432. */
export const TEST_SERVER_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** Creates an empty database for this test run; `drop()` removes it (and any connection left open). */
export async function createTestDatabase(serverUrl = TEST_SERVER_URL): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `storyloom_test_${Date.now()}_${randomBytes(3).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`create database "${name}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: serverUrl });
      await client.connect();
      try {
        await client.query(`drop database if exists "${name}" with (force)`);
      } finally {
        await client.end();
      }
    },
  };
}

/**
 * A fresh database with one subgraph's schema migrated, opened as the subgraph opens it, for
 * the integration tests of that subgraph; `close()` closes the ORM and drops the database.
 */
export async function migratedSubgraphDatabase(
  module: Pick<SubgraphModule, 'name' | 'entities' | 'migrations'>,
  logger: Logger = createLogger('silent'),
): Promise<{ url: string; orm: MikroORM; close(): Promise<void> }> {
  const db = await createTestDatabase();
  const orm = await openDatabase({ url: db.url, schema: module.name, entities: module.entities, migrations: module.migrations, logger });
  await migrate(orm);
  return {
    url: db.url,
    orm,
    async close() {
      await orm.close(true);
      await db.drop();
    },
  };
}
