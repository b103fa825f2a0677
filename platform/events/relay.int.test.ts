import type { MikroORM } from '@mikro-orm/postgresql';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../../test/support/database.js';
import { migrate, openDatabase } from '../db/database.js';
import { SchemaMigration } from '../db/migration.js';
import { createLogger } from '../log.js';
import type { EventEnvelope } from './envelope.js';
import { recordEvents } from './outbox.js';
import { OUTBOX_DDL } from './outbox.entity.js';
import { OutboxRelay } from './relay.js';
import type { EventTransport } from './transport.js';

class OutboxOnly extends SchemaMigration {
  override up(): void {
    this.sql(...OUTBOX_DDL);
  }
}

/** A transport that records what it is given and can be told to fail the n-th publish. */
class FlakyTransport implements Pick<EventTransport, 'publish'> {
  readonly published: string[] = [];
  failOn: number | null = null;
  private calls = 0;
  async publish(event: EventEnvelope): Promise<void> {
    if (++this.calls === this.failOn) throw new Error('transport down');
    this.published.push((event.payload as { n: number }).n.toString());
  }
}

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let orm: MikroORM;
const logger = createLogger('silent');

beforeAll(async () => {
  db = await createTestDatabase();
  orm = await openDatabase({ url: db.url, schema: 'relay_test', entities: [], migrations: [{ name: 'outbox', class: OutboxOnly }], logger });
  await migrate(orm);
});
afterAll(async () => {
  await orm?.close();
  await db?.drop();
});

const write = async (...ns: number[]) => {
  const em = orm.em.fork();
  await em.transactional(async (tx) => void (await recordEvents(tx, { serviceName: 'test' }, ns.map((n) => ({ type: 'relay.probe', payload: { n } })))));
};

describe('OutboxRelay', () => {
  it('keeps outbox order when a publish fails mid-batch, and sends nothing twice', async () => {
    const transport = new FlakyTransport();
    const relay = new OutboxRelay(orm, transport, logger);
    await write(1, 2, 3, 4);
    transport.failOn = 3; // the third event's publish fails
    expect(await relay.flush()).toBe(0);
    expect(transport.published).toEqual(['1', '2']);
    expect(await relay.flush()).toBe(2);
    expect(transport.published).toEqual(['1', '2', '3', '4']);
    expect(await relay.flush()).toBe(0);
  });

  it('marks what the transport confirmed when one event is refused late, and retries only that one', async () => {
    const refused: string[] = [];
    const published: string[] = [];
    let refuse = true;
    // Like a server refusing one event (too large, say) after the ones behind it were sent.
    const transport = {
      async publish(event: EventEnvelope) {
        const n = String((event.payload as { n: number }).n);
        await new Promise((resolve) => setImmediate(resolve));
        if (n === '10' && refuse) {
          refused.push(n);
          throw new Error('refused by the server');
        }
        published.push(n);
      },
    };
    const relay = new OutboxRelay(orm, transport, logger);
    await write(9, 10, 11);
    expect(await relay.flush()).toBe(0);
    expect([published, refused]).toEqual([['9', '11'], ['10']]);
    refuse = false;
    expect(await relay.flush()).toBe(1);
    expect(published).toEqual(['9', '11', '10']);
    expect(await relay.flush()).toBe(0);
  });

  it('lets one relay of a subgraph publish at a time', async () => {
    const transport = new FlakyTransport();
    const relay = new OutboxRelay(orm, transport, logger);
    await write(5, 6);
    // Another replica's relay in the middle of a batch holds the subgraph's relay lock.
    const other = new pg.Client({ connectionString: db.url });
    await other.connect();
    try {
      await other.query('begin');
      await other.query(`select pg_advisory_xact_lock(hashtext('relay_test.outbox_relay'))`);
      expect(await relay.flush()).toBe(0);
      expect(transport.published).toEqual([]);
      await other.query('commit');
    } finally {
      await other.end();
    }
    expect(await relay.flush()).toBe(2);
    expect(transport.published).toEqual(['5', '6']);
  });

  it('publishes every retained row again, in order, for a new in-process stream', async () => {
    await write(7, 8);
    await new OutboxRelay(orm, new FlakyTransport(), logger).flush();
    const published = (await orm.em.fork().getConnection().execute<{ n: number }[]>(
      `select ("envelope" -> 'payload' ->> 'n')::int as n from relay_test.outbox where "published_at" is not null order by "position"`,
    )).map((row) => String(row.n));
    expect(published.slice(-2)).toEqual(['7', '8']);
    const fresh = new FlakyTransport();
    expect(await new OutboxRelay(orm, fresh, logger).republishRetained()).toBe(published.length);
    expect(fresh.published).toEqual(published);
  });
});
