import { randomUUID } from 'node:crypto';
import type { MikroORM } from '@mikro-orm/postgresql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventEnvelope, NewEvent } from '../../platform/events/envelope.js';
import { createLogger } from '../../platform/log.js';
import { migratedSubgraphDatabase } from '../../test/support/database.js';
import { notificationMigrations } from './migrations/index.js';
import { notificationConsumer } from './notification.consumer.js';
import { Delivery, notificationEntities, Recipient } from './notification.entities.js';

/**
 * The consumer on a real PostgreSQL, without a transport: the transaction the event runtime
 * puts around `handle` is mimicked here.
 */
const logger = createLogger('silent');
let db: Awaited<ReturnType<typeof migratedSubgraphDatabase>>;
let orm: MikroORM;
const consumer = notificationConsumer({ app: () => 'https://app.example.test' });

beforeAll(async () => {
  db = await migratedSubgraphDatabase({ name: 'notification', entities: notificationEntities, migrations: notificationMigrations }, logger);
  orm = db.orm;
});
afterAll(async () => {
  await db?.close();
});

const envelope = (type: string, userId: string, payload: unknown, at = new Date()): EventEnvelope => ({
  id: randomUUID(),
  type,
  serviceName: 'identity',
  timestamp: at.toISOString(),
  version: 1,
  correlationId: null,
  causationId: null,
  userId,
  payload,
});

async function handle(event: EventEnvelope): Promise<NewEvent[]> {
  const emitted: NewEvent[] = [];
  await orm.em.fork().transactional((em) => consumer.handle(event, { em, event, emit: (e) => void emitted.push(e), log: logger, replaying: false }));
  return emitted;
}

const registered = (userId: string, email: string) => envelope('user.registered', userId, { userId, email, displayName: 'Dora Reader', locale: 'en' });

describe('notification after an account is deleted', () => {
  it('welcomes a new user (the baseline)', async () => {
    const userId = randomUUID();
    await handle(registered(userId, `${userId}@example.test`));
    expect(await orm.em.fork().count(Delivery, { userId })).toBeGreaterThan(0);
  });

  it('keeps a tombstone: a late user.registered and user.updated bring nothing back and send nothing', async () => {
    const userId = randomUUID();
    const deleted = await handle(envelope('user.deleted', userId, { userId }));
    expect(deleted.map((e) => e.type)).toEqual(['user.erasure.completed']);

    // Registration arrives after the deletion (a replica, a dead letter replayed).
    await handle(registered(userId, `${userId}@example.test`));
    await handle(envelope('user.updated', userId, { userId, changes: { displayName: 'Dora Again', locale: 'fr' } }));

    const person = await orm.em.fork().findOneOrFail(Recipient, { userId });
    expect(person).toMatchObject({ email: null, phone: null, displayName: 'Former user' });
    expect(person.deletedAt).not.toBeNull();
    expect(await orm.em.fork().count(Delivery, { userId })).toBe(0);
    expect(await orm.em.fork().count(Delivery, { address: `${userId}@example.test` })).toBe(0);
  });

  it('erases a known recipient and keeps it erased, asked twice', async () => {
    const userId = randomUUID();
    await handle(registered(userId, `${userId}@example.test`));
    await handle(envelope('user.deleted', userId, { userId }));
    await handle(envelope('user.deleted', userId, { userId }));
    await handle(envelope('user.updated', userId, { userId, changes: { displayName: 'Back' } }));
    const person = await orm.em.fork().findOneOrFail(Recipient, { userId });
    expect(person).toMatchObject({ email: null, displayName: 'Former user' });
    expect(await orm.em.fork().count(Delivery, { userId })).toBe(0);
  });
});
