import type { MikroORM } from '@mikro-orm/postgresql';
import { openDatabase } from '../../platform/db/database.js';
import { SchemaMigration } from '../../platform/db/migration.js';
import type { ConsumerDefinition } from '../../platform/events/consumer.types.js';
import { CONSUMER_DDL } from '../../platform/events/inbox.js';
import { OUTBOX_DDL } from '../../platform/events/outbox.entity.js';
import type { Logger } from '../../platform/log.js';

/** A throwaway consumer schema for tests of the event backbone: outbox, inbox, and a tally. */
export const TALLY_SCHEMA = 'tally_test';

class TallyTables extends SchemaMigration {
  override up(): void {
    this.sql(...OUTBOX_DDL, ...CONSUMER_DDL, `create table "tally" ("key" text primary key, "count" integer not null)`);
  }
}

export function openTallyDatabase(url: string, logger: Logger): Promise<MikroORM> {
  return openDatabase({ url, schema: TALLY_SCHEMA, entities: [], migrations: [{ name: 'tally', class: TallyTables }], logger });
}

/** Counts `tally.add` events by payload key; `pauseMs` makes each event take a while. */
export function tallyDefinition(name: string, options: { pauseMs?: number } = {}): ConsumerDefinition {
  return {
    name,
    types: ['tally.add'],
    async handle(event, ctx) {
      await ctx.em
        .getConnection()
        .execute(
          `insert into ${TALLY_SCHEMA}.tally ("key", "count") values (?, 1) on conflict ("key") do update set "count" = tally."count" + 1`,
          [(event.payload as { key: string }).key],
          'run',
          ctx.em.getTransactionContext(),
        );
      if (options.pauseMs) await new Promise((resolve) => setTimeout(resolve, options.pauseMs));
    },
  };
}
