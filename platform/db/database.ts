import { MikroORM, type EntitySchema, type MigrationObject } from '@mikro-orm/postgresql';
import { Migrator } from '@mikro-orm/migrations';
import { withAdvisoryLock } from './session.js';
import type { Logger } from '../log.js';
import { OutboxRecord } from '../events/outbox.entity.js';

export interface DatabaseOptions {
  url: string;
  /** The subgraph's own PostgreSQL schema: its tables, its outbox, its migrations table. */
  schema: string;
  entities: EntitySchema<any>[];
  migrations: MigrationObject[];
  logger: Logger;
  poolMax?: number;
}

/**
 * One MikroORM per subgraph, bound to the subgraph's schema. Entities are EntitySchema
 * definitions (no decorators: tsx and vitest's esbuild emit no decorator metadata), and
 * migrations are an explicit list so they load the same from TypeScript and compiled output.
 */
export async function openDatabase(options: DatabaseOptions): Promise<MikroORM> {
  const log = options.logger.child({ schema: options.schema });
  return MikroORM.init({
    clientUrl: options.url,
    schema: options.schema,
    entities: [OutboxRecord, ...options.entities],
    extensions: [Migrator],
    migrations: {
      migrationsList: options.migrations,
      tableName: 'mikro_orm_migrations',
      transactional: true,
      allOrNothing: true,
      snapshot: false,
    },
    // Resolvers must use the per-request fork; touching the global EntityManager is a bug.
    allowGlobalContext: false,
    pool: { min: 0, max: options.poolMax ?? 10 },
    discovery: { warnWhenNoEntities: false },
    logger: (message) => log.debug(message),
    ensureDatabase: false,
  });
}

/**
 * Applies the subgraph's pending migrations; returns the names applied. Replicas of a subgraph
 * starting together take turns: the first applies them, the others then find nothing pending.
 */
export async function migrate(orm: MikroORM): Promise<string[]> {
  const applied = await withAdvisoryLock(orm.config.get('clientUrl')!, `storyloom.migrate.${orm.config.get('schema')}`, () => orm.getMigrator().up());
  return applied.map((m) => m.name);
}
