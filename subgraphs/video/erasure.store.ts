import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { tableOf } from '../../platform/db/tables.js';
import { unauthenticated } from '../../platform/errors.js';
import type { TaskHandle, VideoProviderName } from './providers/provider.js';
import { ErasureCleanup } from './video.entities.js';

/**
 * What the erasure of a user shares with generateVideo: a lock per user (the one that also
 * counts a user's videos against their plan), taken first by both, and the record of erased
 * accounts. A request either commits before the erasure takes the lock (and the erasure deletes
 * its job) or finds the account erased and is refused, so no video is made for a user after
 * their erasure with an access token that is still valid.
 */
export async function lockUser(em: EntityManager, userId: string): Promise<void> {
  await em.getConnection().execute(`select pg_advisory_xact_lock(hashtext('video:' || ?::text))`, [userId], 'all', em.getTransactionContext());
}

/** The lock, then UNAUTHENTICATED if the account was erased. */
export async function lockLiveUser(em: EntityManager, userId: string): Promise<void> {
  await lockUser(em, userId);
  const rows = await em.getConnection().execute(`select 1 from ${tableOf(em, 'erased_user')} where "user_id" = ?`, [userId], 'all', em.getTransactionContext());
  if (rows.length) throw unauthenticated('This account has been deleted');
}

export async function markErased(em: EntityManager, userId: string, at: Date): Promise<void> {
  await em.getConnection().execute(`insert into ${tableOf(em, 'erased_user')} ("user_id", "erased_at") values (?, ?) on conflict do nothing`, [userId, at], 'run', em.getTransactionContext());
}

export type CleanupWork = Pick<ErasureCleanup, 'kind' | 'target' | 'provider' | 'task'> & { dueAt?: Date };

export const blob = (key: string, dueAt?: Date): CleanupWork => ({ kind: 'BLOB', target: key, provider: null, task: null, dueAt });
export const providerTask = (provider: VideoProviderName, task: TaskHandle): CleanupWork => ({ kind: 'PROVIDER_TASK', target: task.id, provider, task });

/** Records work for the ErasureSweeper in the caller's transaction: due at once unless it says when. */
export async function recordCleanup(em: EntityManager, userId: string, work: CleanupWork[]): Promise<void> {
  const now = new Date();
  const rows = work.map((w) => ({ id: randomUUID(), userId, kind: w.kind, target: w.target, provider: w.provider, task: w.task, dueAt: w.dueAt ?? now, attempts: 0, lastError: null, createdAt: now }));
  // In slices: a statement takes at most 65,535 parameters.
  for (let start = 0; start < rows.length; start += 1000) await em.insertMany(ErasureCleanup, rows.slice(start, start + 1000));
}
