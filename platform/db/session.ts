import pg from 'pg';
import { withinDeadline } from '../deadline.js';

/**
 * Ends a pg session without waiting forever: `end()` never settles on a connection the server
 * already cut (PostgreSQL stopping first on Ctrl-C), and a stop must not hang on it.
 */
export async function endWithin(client: pg.Client, ms: number): Promise<void> {
  await withinDeadline(client.end(), ms).catch(() => undefined);
}

/**
 * Runs `work` holding a PostgreSQL advisory lock named `name`, on a session of its own (ending
 * the session releases the lock, even if the process dies): replicas starting together take turns.
 */
export async function withAdvisoryLock<T>(url: string, name: string, work: () => Promise<T>): Promise<T> {
  const session = new pg.Client({ connectionString: url });
  try {
    await session.connect();
    await session.query('select pg_advisory_lock(hashtext($1))', [name]);
    return await work();
  } finally {
    await endWithin(session, 2_000);
  }
}
