import { randomBytes } from 'node:crypto';
import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { MikroORM } from '@mikro-orm/postgresql';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { createTestDatabase } from '../../test/support/database.js';
import { openTallyDatabase } from '../../test/support/tally.js';
import { migrate } from '../db/database.js';
import { createLogger } from '../log.js';
import { EventConsumer, listDeadLetters } from './consumer.js';
import type { ConsumerDefinition } from './consumer.types.js';
import { createEnvelope, type EventEnvelope } from './envelope.js';
import { InProcessTransport } from './in-process.js';
import { JetStreamTransport } from './jetstream.js';
import type { EventTransport } from './transport.js';
import { Metrics } from '../telemetry/metrics.js';

const logger = createLogger('silent');
const eventually = <T>(check: () => T | Promise<T>) => vi.waitFor(check, { timeout: 10_000, interval: 20 });
const token = randomBytes(5).toString('hex');
const natsUrl = inject('natsUrl');

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let orm: MikroORM;

beforeAll(async () => {
  db = await createTestDatabase();
  orm = await openTallyDatabase(db.url, logger);
  await migrate(orm);
});
afterAll(async () => {
  await orm?.close();
  await db?.drop();
});

const sql = <T = Record<string, unknown>>(query: string, params: unknown[] = []) => orm.em.fork().getConnection().execute<T[]>(query, params);
const tally = async (key: string) => Number((await sql<{ count: number }>(`select "count" from tally_test.tally where "key" = ?`, [key]))[0]?.count ?? 0);

/**
 * A consumer counting `<ns>.tally.add` events per payload key. `fail` may throw inside the
 * handler (after its write, which the rollback must undo) to simulate crashes and bugs.
 */
function tallyConsumer(ns: string, fail: (event: EventEnvelope, attempt: number) => boolean = () => false): ConsumerDefinition {
  const attempts = new Map<string, number>();
  return {
    name: `tally-${ns}`,
    types: [`${ns}.tally.*`],
    async handle(event, ctx) {
      const key = (event.payload as { key: string }).key;
      await ctx.em
        .getConnection()
        .execute(
          `insert into tally_test.tally ("key", "count") values (?, 1) on conflict ("key") do update set "count" = tally."count" + 1`,
          [key],
          'run',
          ctx.em.getTransactionContext(),
        );
      const attempt = (attempts.get(event.id) ?? 0) + 1;
      attempts.set(event.id, attempt);
      if (fail(event, attempt)) throw new Error(`handler crashed on ${key}`);
      if (key.endsWith('-echo')) ctx.emit({ type: `${ns}.echo.sent`, payload: { key } });
    },
    async reset(em) {
      await em.getConnection().execute(`delete from tally_test.tally where "key" like ?`, [`${ns}%`], 'run', em.getTransactionContext());
    },
  };
}

interface Harness {
  transport: EventTransport;
  /** Publishes the same envelope again, past the transport's de-duplication (a publisher bug, or the window long gone). */
  publishAgain(event: EventEnvelope): Promise<void>;
  close(): Promise<void>;
}

const harnesses: Array<[string, () => Promise<Harness>]> = [
  [
    'in-process',
    async () => {
      // No de-duplication window: a second publish of an id goes through to the consumer.
      const transport = new InProcessTransport({ duplicateWindowMs: 0 });
      return { transport, publishAgain: (event) => transport.publish(event), close: () => transport.close() };
    },
  ],
  [
    'JetStream',
    async () => {
      const prefix = `c${token}.events.`;
      const transport = await JetStreamTransport.connect({ url: natsUrl, stream: `CONSUMER_TEST_${token}`, subjectPrefix: prefix });
      const nc = await connect({ servers: natsUrl });
      return {
        transport,
        // Without a message id JetStream stores it again.
        publishAgain: async (event) => void (await jetstream(nc).publish(prefix + event.type, JSON.stringify(event))),
        close: async () => {
          await nc.close();
          await transport.close();
        },
      };
    },
  ],
];

describe.each(harnesses)('EventConsumer over the %s transport', (name, make) => {
  let harness: Harness;
  const consumers: EventConsumer[] = [];
  const ns = `n${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    harness = await make();
  });
  afterAll(async () => {
    await Promise.all(consumers.map((consumer) => consumer.stop()));
    await harness?.close();
  });

  function start(definition: ConsumerDefinition, options: { maxDeliver?: number; onEventsCommitted?: () => void; metrics?: Metrics } = {}) {
    const consumer = new EventConsumer({
      definition,
      orm,
      transport: harness.transport,
      logger,
      serviceName: 'consumer-test',
      backoffMs: () => 10,
      ...options,
    });
    consumers.push(consumer);
    return consumer;
  }

  const add = (scope: string, key: string, extra: Partial<EventEnvelope> = {}) => ({
    ...createEnvelope({ type: `${scope}.tally.add`, payload: { key: `${scope}-${key}` } }, { serviceName: 'test', correlationId: 'corr-1' }),
    ...extra,
  });

  it('counts an event published twice, and one redelivered after a handler crash, once each', async () => {
    const scope = `${ns}a`;
    const metrics = new Metrics();
    const consumer = start(tallyConsumer(scope, (event, attempt) => (event.payload as { key: string }).key.endsWith('crashy') && attempt === 1), { metrics });
    await consumer.start();
    const twice = add(scope, 'twice');
    const crashy = add(scope, 'crashy');
    const sentinel = add(scope, 'sentinel');
    await harness.transport.publish(twice);
    await harness.publishAgain(twice);
    await harness.transport.publish(crashy);
    await harness.transport.publish(sentinel);
    await eventually(async () => expect(await tally(`${scope}-sentinel`)).toBe(1));
    expect(await tally(`${scope}-twice`)).toBe(1);
    expect(await tally(`${scope}-crashy`)).toBe(1);
    const inbox = await sql(`select "event_id" from tally_test.inbox where "consumer" = ?`, [`tally-${scope}`]);
    expect(inbox).toHaveLength(3);
    // The crash's redelivery is counted; the second publish was never delivered (de-duplicated).
    const redelivered = (await metrics.redeliveries.get()).values.find((v) => v.labels.consumer === `tally-${scope}`);
    expect(redelivered?.value).toBe(1);
  });

  it('carries the correlation id to caused events and names the cause', async () => {
    const scope = `${ns}b`;
    let committed = 0;
    const consumer = start(tallyConsumer(scope), { onEventsCommitted: () => committed++ });
    await consumer.start();
    const cause = add(scope, 'echo', { userId: '3f1c1b9e-9a53-4a36-9a3e-3c1bd0c1b1a1' });
    await harness.transport.publish(cause);
    await eventually(async () => expect(await tally(`${scope}-echo`)).toBe(1));
    const [row] = await sql<{ envelope: EventEnvelope }>(`select "envelope" from tally_test.outbox where "type" = ?`, [`${scope}.echo.sent`]);
    expect(row?.envelope).toMatchObject({
      serviceName: 'consumer-test',
      correlationId: 'corr-1',
      causationId: cause.id,
      userId: cause.userId,
      payload: { key: `${scope}-echo` },
    });
    expect(committed).toBe(1);
  });

  it('dead-letters an event that always fails, keeps going, and replays it once fixed', async () => {
    const scope = `${ns}c`;
    let broken = true;
    const consumer = start(
      tallyConsumer(scope, (event) => broken && (event.payload as { key: string }).key.endsWith('poison')),
      { maxDeliver: 3 },
    );
    await consumer.start();
    const poison = add(scope, 'poison');
    await harness.transport.publish(poison);
    await harness.transport.publish(add(scope, 'after'));
    await eventually(async () => expect(await tally(`${scope}-after`)).toBe(1));
    expect(await tally(`${scope}-poison`)).toBe(0);
    const [deadLetter] = await listDeadLetters(orm, { consumer: `tally-${scope}` });
    expect(deadLetter).toMatchObject({ eventId: poison.id, eventType: poison.type, attempts: 3, replayedAt: null, envelope: poison });
    expect(deadLetter!.error).toContain('handler crashed');

    expect(await consumer.replayDeadLetter(deadLetter!.id)).toMatchObject({ ok: false, code: 'HANDLER_FAILED' });
    expect((await listDeadLetters(orm, { id: deadLetter!.id }))[0]?.attempts).toBe(4);
    broken = false;
    const replayed = await consumer.replayDeadLetter(deadLetter!.id);
    expect(replayed).toMatchObject({ ok: true, deadLetter: { replayedAt: expect.any(Date) } });
    expect(await tally(`${scope}-poison`)).toBe(1);
    expect(await consumer.replayDeadLetter(deadLetter!.id)).toMatchObject({ ok: false, code: 'ALREADY_REPLAYED' });
    expect(await tally(`${scope}-poison`)).toBe(1);
    expect(await listDeadLetters(orm, { consumer: `tally-${scope}` })).toEqual([]);
  });

  it('applies the events before a failing one in a batch, and the failing one once on retry', async () => {
    const scope = `${ns}d`;
    const events = ['one', 'two', 'three', 'four'].map((key) => add(scope, key));
    // Published before the consumer starts, so they arrive as one batch.
    for (const event of events) await harness.transport.publish(event);
    const consumer = start(tallyConsumer(scope, (event, attempt) => (event.payload as { key: string }).key.endsWith('three') && attempt === 1));
    await consumer.start();
    await eventually(async () => expect(await tally(`${scope}-four`)).toBe(1));
    for (const key of ['one', 'two', 'three']) expect(await tally(`${scope}-${key}`)).toBe(1);
  });

  it('rebuilds its read model from the stream to the same rows', async () => {
    const scope = `${ns}e`;
    const consumer = start(tallyConsumer(scope));
    await consumer.start();
    for (const key of ['x', 'y', 'x', 'z', 'x']) await harness.transport.publish(add(scope, key));
    await eventually(async () => expect(await tally(`${scope}-z`)).toBe(1));
    await eventually(async () => expect(await tally(`${scope}-x`)).toBe(3));
    const snapshot = () => sql(`select * from tally_test.tally where "key" like ? order by "key"`, [`${scope}%`]);
    const before = await snapshot();
    await sql(`update tally_test.tally set "count" = 99 where "key" like ?`, [`${scope}%`]);
    const { events } = await consumer.rebuild();
    expect(events).toBe(5);
    expect(await snapshot()).toEqual(before);
    // Live handling goes on after a rebuild, without counting the rebuilt events again.
    await harness.transport.publish(add(scope, 'y'));
    await eventually(async () => expect(await tally(`${scope}-y`)).toBe(2));
    expect(await tally(`${scope}-x`)).toBe(3);
  });

  it('records no dead letter for an event the inbox shows handled, and reopens no replayed one', async () => {
    const scope = `${ns}g`;
    const consumer = start(tallyConsumer(scope));
    await consumer.start();
    const handled = add(scope, 'handled');
    await harness.transport.publish(handled);
    await eventually(async () => expect(await tally(`${scope}-handled`)).toBe(1));
    await consumer.recordDeadLetter(handled, new Error('a late, wrong verdict'));
    expect(await listDeadLetters(orm, { consumer: `tally-${scope}`, all: true })).toEqual([]);
  });

  it('a rebuild leaves out an event its handler fails on, and rebuilds the rest', async () => {
    const scope = `${ns}h`;
    const consumer = start(tallyConsumer(scope, (event) => (event.payload as { key: string }).key.endsWith('-bad')), { maxDeliver: 2 });
    await consumer.start();
    const bad = add(scope, 'bad');
    for (const event of [add(scope, 'p'), bad, add(scope, 'q'), add(scope, 'p')]) await harness.transport.publish(event);
    await eventually(async () => expect(await tally(`${scope}-q`)).toBe(1));
    await eventually(async () => expect(await tally(`${scope}-p`)).toBe(2));
    const { events, skipped } = await consumer.rebuild();
    expect(skipped).toEqual([bad.id]);
    expect(events).toBe(3);
    expect([await tally(`${scope}-p`), await tally(`${scope}-q`), await tally(`${scope}-bad`)]).toEqual([2, 1, 0]);
  });

  it('applies waiting events with handleMany, and falls back to one at a time when it fails', async () => {
    const scope = `${ns}i`;
    const base = tallyConsumer(scope);
    const batches: number[] = [];
    let refusedTogether = false;
    const consumer = start({
      ...base,
      async handleMany(events, ctx) {
        batches.push(events.length);
        // Fails on a batch holding a "refused" key; handle() accepts it.
        if (events.some((event) => (event.payload as { key: string }).key.endsWith('-refused'))) {
          refusedTogether = true;
          throw new Error('handleMany refuses');
        }
        for (const event of events) await base.handle(event, { ...ctx, event, emit: () => undefined });
      },
    });
    const first = ['a', 'b', 'c'].map((key) => add(scope, key));
    for (const event of first) await harness.transport.publish(event);
    await consumer.start();
    await eventually(async () => expect(await tally(`${scope}-c`)).toBe(1));
    expect(Math.max(...batches)).toBeGreaterThan(1);

    await consumer.stop();
    for (const key of ['d', 'refused', 'e']) await harness.transport.publish(add(scope, key));
    await consumer.start();
    await eventually(async () => expect(await tally(`${scope}-e`)).toBe(1));
    expect(refusedTogether).toBe(true);
    expect([await tally(`${scope}-a`), await tally(`${scope}-d`), await tally(`${scope}-refused`)]).toEqual([1, 1, 1]);
  });

  it(`(${name}) refuses to rebuild a consumer without reset()`, async () => {
    const { reset: _reset, ...definition } = tallyConsumer(`${ns}f`);
    await expect(start(definition).rebuild()).rejects.toThrow(/cannot be replayed/);
  });
});
