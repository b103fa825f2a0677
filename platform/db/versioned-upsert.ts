import type { EntityManager } from '@mikro-orm/postgresql';
import { tableOf } from './tables.js';

/**
 * A projection row of another domain's versioned facts (billing's entitlements, keyed by user):
 * inserted, or updated only by a newer version, so an older event (a replayed dead letter, one
 * another replica handled first) never undoes a newer one. Events from before versions existed
 * count as version 0 and are ordered by time among themselves. The row's table has the key
 * column, the value columns, "membership_version" and "as_of".
 */
export async function upsertVersioned(
  em: EntityManager,
  table: string,
  key: { column: string; value: unknown },
  values: Record<string, unknown>,
  version: { membershipVersion: number; asOf: Date },
): Promise<void> {
  const columns = [key.column, ...Object.keys(values), 'membership_version', 'as_of'];
  const quoted = (column: string) => `"${column.replace(/"/g, '""')}"`;
  const updates = columns.slice(1).map((column) => `${quoted(column)} = excluded.${quoted(column)}`);
  await em.getConnection().execute(
    `insert into ${tableOf(em, table)} as e (${columns.map(quoted).join(', ')})
     values (${columns.map(() => '?').join(', ')})
     on conflict (${quoted(key.column)}) do update set ${updates.join(', ')}
     where e."membership_version" < excluded."membership_version"
        or (excluded."membership_version" = 0 and e."membership_version" = 0 and e."as_of" <= excluded."as_of")`,
    [key.value, ...Object.values(values), version.membershipVersion, version.asOf],
    'run',
    em.getTransactionContext(),
  );
}
