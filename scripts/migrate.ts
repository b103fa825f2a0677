/**
 * npm run migrate: applies every subgraph's pending migrations, each in its own schema, on
 * DATABASE_URL (or the embedded server of `npm start` when it is not set).
 */
import { loadConfigOrExit } from '../platform/config.js';
import { databaseFor } from '../platform/db/connect.js';
import { migrate, openDatabase } from '../platform/db/database.js';
import { createLogger } from '../platform/log.js';
import { subgraphModules } from '../subgraphs/index.js';

const config = loadConfigOrExit({ generateSecrets: true });
const logger = createLogger(config.LOG_LEVEL);
const database = await databaseFor(config, logger);
let failed = false;
try {
  for (const module of subgraphModules) {
    const orm = await openDatabase({ url: database.url, schema: module.name, entities: module.entities, migrations: module.migrations, logger });
    try {
      const applied = await migrate(orm);
      logger.info({ subgraph: module.name, applied }, applied.length ? 'migrations applied' : 'schema up to date');
    } finally {
      await orm.close();
    }
  }
} catch (error) {
  failed = true;
  logger.error({ err: error }, 'migration failed');
} finally {
  await database.stop();
}
process.exit(failed ? 1 : 0);
