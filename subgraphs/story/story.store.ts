import type { EntityManager } from '@mikro-orm/postgresql';
import { tableOf as table } from '../../platform/db/tables.js';

/**
 * Statements the service and the consumers share, each in the caller's transaction.
 */
/**
 * Serialises, until commit, what changes how many stories an author has: their creates (the
 * monthly count cannot be passed by a concurrent one) and the archiving of a deleted account
 * (no create slips in after it).
 */
export async function lockAuthor(em: EntityManager, authorId: string): Promise<void> {
  await em.getConnection().execute('select pg_advisory_xact_lock(hashtext(?))', [`story.author:${authorId}`], 'all', em.getTransactionContext());
}

export async function isDeletedAuthor(em: EntityManager, authorId: string): Promise<boolean> {
  const rows = await em.getConnection().execute(`select 1 from ${table(em, 'deleted_author')} where "user_id" = ?`, [authorId], 'all', em.getTransactionContext());
  return rows.length > 0;
}

export async function markDeletedAuthor(em: EntityManager, authorId: string, at: Date): Promise<void> {
  await em
    .getConnection()
    .execute(`insert into ${table(em, 'deleted_author')} ("user_id", "deleted_at") values (?, ?) on conflict do nothing`, [authorId, at], 'run', em.getTransactionContext());
}

/**
 * Ends the open analyses of archived stories: a queued one is not run, and a running one finds
 * its run id gone and drops its result.
 */
export async function cancelOpenAnalyses(em: EntityManager, storyIds: string[], at: Date): Promise<void> {
  if (!storyIds.length) return;
  await em.getConnection().execute(
    `update ${table(em, 'story_analysis')}
        set "status" = 'FAILED', "failure_reason" = 'CANCELLED', "failure_message" = 'The story was archived before its analysis finished',
            "run_id" = null, "lease_until" = null, "completed_at" = ?
      where "story_id" in (?) and "status" in ('PENDING', 'RUNNING')`,
    [at, storyIds],
    'run',
    em.getTransactionContext(),
  );
}
