/**
 * npm run db:provision: makes the database ready for the distributed mode. For each subgraph,
 * the role in SUBGRAPH_<NAME>_DATABASE_URL (created, or its password updated) owns the
 * subgraph's schema and everything in it, and has no rights on any other subgraph's schema:
 * table ownership is enforced by PostgreSQL. Run with DATABASE_URL = an administrator (a
 * superuser, or a role with CREATEROLE that may create schemas). Safe to run again.
 */
import { loadConfigOrExit } from '../platform/config.js';
import { provisionRoles, roleSettingsFrom } from '../platform/db/provision.js';
import { createLogger } from '../platform/log.js';
import { subgraphNames } from '../subgraphs/catalog.js';

const config = loadConfigOrExit({ generateSecrets: true, require: ['DATABASE_URL'] });
const logger = createLogger(config.LOG_LEVEL).child({ process: 'provision' });
try {
  const roles = roleSettingsFrom(process.env, subgraphNames);
  await provisionRoles(config.DATABASE_URL!, roles, logger);
  logger.info({ subgraphs: roles.map((role) => role.schema) }, 'database provisioned');
} catch (error) {
  logger.fatal({ err: error }, 'provisioning failed');
  process.exitCode = 1;
}
