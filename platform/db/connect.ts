import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { startEmbeddedPostgres } from './embedded.js';

/** DATABASE_URL when set, else the embedded server under DATA_DIR (started here, stopped by `stop`). */
export async function databaseFor(config: Config, logger: Logger): Promise<{ url: string; embedded: boolean; stop(): Promise<void> }> {
  if (config.DATABASE_URL) return { url: config.DATABASE_URL, embedded: false, stop: async () => {} };
  logger.info({ dataDir: config.DATA_DIR, port: config.EMBEDDED_PG_PORT }, 'starting embedded PostgreSQL');
  const server = await startEmbeddedPostgres({ dataDir: config.DATA_DIR, port: config.EMBEDDED_PG_PORT, logger });
  return { url: server.url, embedded: true, stop: server.stop };
}
