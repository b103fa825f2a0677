import type { EntityManager } from '@mikro-orm/postgresql';
import { tableOf } from '../../platform/db/tables.js';
import { unauthenticated } from '../../platform/errors.js';

/**
 * Deleted accounts, as collaboration's erasure recorded them. Every path that can add something
 * of a user (accepting, inviting, making a template) takes the user's lock shared, before any
 * row lock, and the erasure takes it exclusively: a request either commits before the erasure
 * reads what the user holds, or finds them deleted.
 */
const lockKey = (userId: string) => `collaboration.user:${userId}`;
const execute = (em: EntityManager, sql: string, params: unknown[]) => em.getConnection().execute(sql, params, 'all', em.getTransactionContext());

/** In the caller's transaction: refuses a user whose account is deleted (their access token may still be valid). */
export async function lockLiveUser(em: EntityManager, userId: string): Promise<void> {
  await execute(em, 'select pg_advisory_xact_lock_shared(hashtext(?))', [lockKey(userId)]);
  const rows = await execute(em, `select 1 from ${tableOf(em, 'deleted_user')} where "user_id" = ?`, [userId]);
  if (rows.length) throw unauthenticated('This account has been deleted');
}

/** The first step of the erasure, in its transaction: the lock, then the user recorded as deleted. */
export async function markDeletedUser(em: EntityManager, userId: string, at: Date): Promise<void> {
  await execute(em, 'select pg_advisory_xact_lock(hashtext(?))', [lockKey(userId)]);
  await execute(em, `insert into ${tableOf(em, 'deleted_user')} ("user_id", "deleted_at") values (?, ?) on conflict do nothing`, [userId, at]);
}
