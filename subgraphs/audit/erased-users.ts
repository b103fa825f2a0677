import type { EntityManager } from '@mikro-orm/postgresql';
import { tableOf } from '../../platform/db/tables.js';
import { redactPayload } from './redaction.rules.js';

/**
 * The users audit's erasure step has erased (erased_user), and the redaction of their events in
 * the event log. Storing an event and erasing a user run in separate consumers: the log takes
 * this lock shared while it checks and stores, the erasure takes it exclusively before it
 * records the user. Without it, an event stored in a transaction that checked before the
 * erasure committed, and committed after the erasure's update ran, would stay unredacted (read
 * committed: the update does not see the insert). One key for the whole table, not one per
 * user, because an event can name any number of users in its payload; erasures are rare.
 */
const LOCK = 'audit.erased_user';

/** In the event log's transaction: which of `ids` are erased users, seen after any erasure under way commits. */
export async function erasedAmong(em: EntityManager, ids: string[]): Promise<Set<string>> {
  if (!ids.length) return new Set();
  await em.execute('select pg_advisory_xact_lock_shared(hashtext(?))', [LOCK], 'run');
  const rows = await em.execute<{ user_id: string }[]>(
    `select "user_id" from ${tableOf(em, 'erased_user')} where "user_id" in (select jsonb_array_elements_text(?::jsonb)::uuid)`,
    [JSON.stringify(ids)],
    'all',
  );
  return new Set(rows.map((row) => row.user_id));
}

/**
 * In the erasure's transaction: records the user as erased, then redacts the payloads of their
 * events, those whose user is them and those that name them anywhere in the payload (an
 * invitation they received, a collaborator's acceptance). Idempotent. Returns how many rows changed.
 */
export async function eraseUser(em: EntityManager, userId: string, at: Date): Promise<number> {
  await em.execute('select pg_advisory_xact_lock(hashtext(?))', [LOCK], 'run');
  await em.execute(`insert into ${tableOf(em, 'erased_user')} ("user_id", "erased_at") values (?, ?) on conflict do nothing`, [userId, at], 'run');
  const log = tableOf(em, 'event_log');
  const rows = await em.execute<{ id: string; payload: unknown }[]>(
    `select "id", "payload" from ${log} where "user_id" = ? or "payload"::text like '%' || ? || '%' for update`,
    [userId, userId],
    'all',
  );
  const changed = rows
    .map((row) => ({ id: row.id, payload: redactPayload(row.payload) }))
    .filter((row, i) => JSON.stringify(row.payload) !== JSON.stringify(rows[i]!.payload));
  if (!changed.length) return 0;
  // One statement; the payloads go as JSON text so any JSON value stays that value.
  await em.execute(
    `update ${log} as e set "payload" = r."payload"
      from jsonb_to_recordset(?::jsonb) as r("id" uuid, "payload" jsonb) where e."id" = r."id"`,
    [JSON.stringify(changed)],
    'run',
  );
  return changed.length;
}
