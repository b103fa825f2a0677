import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { migratedSubgraphDatabase } from '../../test/support/database.js';
import { EventConsumer } from '../../platform/events/consumer.js';
import { createEnvelope, type EventEnvelope } from '../../platform/events/envelope.js';
import type { EventTransport } from '../../platform/events/transport.js';
import { createLogger } from '../../platform/log.js';
import { ERASURE_STEPS } from './deletion.rules.js';
import { DeletionRetries } from './deletion.retries.js';
import { beginDeletion } from './deletion.service.js';
import { identityEntities, ProviderLink, RefreshToken, User } from './identity.entities.js';
import { deletionConsumer } from './identity.consumer.js';
import { identityMigrations } from './migrations/index.js';

/**
 * The deletion saga on a real PostgreSQL, driven directly: reports handled by identity's
 * consumer (inbox and outbox included), retries by DeletionRetries on a clock the test moves.
 */
const logger = createLogger('silent');
const RETRY_MS = 60_000;
const T0 = new Date('2026-12-01T10:00:00.000Z');
const at = (ms: number) => new Date(T0.getTime() + ms);

let db: Awaited<ReturnType<typeof migratedSubgraphDatabase>>;
let consumer: EventConsumer;
let committed = 0;

beforeAll(async () => {
  db = await migratedSubgraphDatabase({ name: 'identity', entities: identityEntities, migrations: identityMigrations }, logger);
  // The transport is not used: the test hands batches to the consumer as the transport would.
  consumer = new EventConsumer({ definition: deletionConsumer, orm: db.orm, transport: {} as EventTransport, logger, serviceName: 'identity' });
});
afterEach(async () => {
  // Each test sees only its own sagas due.
  await sql(`update identity.user_deletion set status = 'COMPLETED' where status = 'IN_PROGRESS'`);
});
afterAll(async () => {
  await db?.close();
});

const sql = <T = Record<string, any>>(query: string, params: unknown[] = []) => db.orm.em.fork().getConnection().execute<T[]>(query, params);

/** An account whose deletion began at `since` (as deleteAccount leaves it), with a provider link and a refresh token. */
async function deleting(since = T0): Promise<string> {
  const id = randomUUID();
  await db.orm.em.fork().transactional(async (em) => {
    em.persist(em.create(User, { id, email: `${id}@example.com`, emailVerified: true, passwordHash: null, displayName: 'Gone', avatarUrl: null, locale: 'en', role: 'USER', createdAt: since, updatedAt: since, deletionRequestedAt: since }));
    em.persist(em.create(ProviderLink, { id: randomUUID(), userId: id, provider: 'GOOGLE', subject: `g-${id}`, linkedAt: since }));
    em.persist(em.create(RefreshToken, { id: randomUUID(), userId: id, familyId: randomUUID(), tokenHash: id, createdAt: since, expiresAt: new Date(since.getTime() + 3600_000), rotatedAt: null, revokedAt: since }));
    beginDeletion(em, id, `corr-${id}`, since);
  });
  return id;
}

/** A step's user.erasure.completed, handled as the consumer handles a delivery; a new event id each time unless `event` is given. */
async function report(userId: string, service: string, event: EventEnvelope = completion(userId, service)): Promise<EventEnvelope> {
  const result = await consumer.handleBatch([{ event, deliveryCount: 1, sequence: 1 }]);
  expect(result).toEqual({ done: 1 });
  return event;
}
const completion = (userId: string, service: string) =>
  createEnvelope({ type: 'user.erasure.completed', userId, payload: { userId, service } }, { serviceName: service, correlationId: `corr-${userId}` });

const dateOf = (value: string | null) => (value === null ? null : new Date(value));

/** The saga's rows as stored. */
async function saga(userId: string) {
  const [deletion] = await sql(`select status, completed_at from identity.user_deletion where user_id = ?`, [userId]);
  const steps = await sql(`select service, status, attempts, requested_at, done_at from identity.user_deletion_step where user_id = ? order by service`, [userId]);
  return {
    status: deletion?.status as string,
    completed_at: dateOf(deletion?.completed_at),
    steps: steps.map((s) => ({ service: s.service as string, status: s.status as string, attempts: s.attempts as number, requested_at: dateOf(s.requested_at)!, done_at: dateOf(s.done_at) })),
  };
}

const rowsOf = async (userId: string) => {
  const [row] = await sql<{ users: number; links: number; tokens: number }>(
    `select (select count(*)::int from identity."user" where id = ?) as users,
            (select count(*)::int from identity.provider_link where user_id = ?) as links,
            (select count(*)::int from identity.refresh_token where user_id = ?) as tokens`,
    [userId, userId, userId],
  );
  return row;
};

const outbox = (type: string, userId: string) =>
  sql<{ id: string; envelope: EventEnvelope<any> }>(`select id, envelope from identity.outbox where type = ? and envelope->>'userId' = ? order by created_at, id`, [type, userId]).then((rows) =>
    rows.map((r) => r.envelope),
  );

function retries(clock: () => Date) {
  return new DeletionRetries({ orm: db.orm, logger, retryMs: RETRY_MS, clock, onEventsCommitted: () => committed++ });
}

describe('the deletion saga', () => {
  it('completes with the last report, in any order, and deletes the account only then', async () => {
    const userId = await deleting();
    expect((await saga(userId)).steps.map((s) => [s.service, s.status, s.attempts])).toEqual(ERASURE_STEPS.map((s) => [s, 'PENDING', 1]));

    const storyDone = await report(userId, 'story');
    await report(userId, 'video');
    await report(userId, 'notification');
    await report(userId, 'narration');
    await report(userId, 'billing');
    await report(userId, 'audit');
    const pending = await saga(userId);
    expect(pending.status).toBe('IN_PROGRESS');
    expect(pending.steps.map((s) => [s.service, s.status])).toEqual([
      ['audit', 'DONE'],
      ['billing', 'DONE'],
      ['collaboration', 'PENDING'],
      ['narration', 'DONE'],
      ['notification', 'DONE'],
      ['story', 'DONE'],
      ['video', 'DONE'],
    ]);
    // `at` is when the step's subgraph reported (its event's time).
    expect(pending.steps.find((s) => s.service === 'story')!.done_at).toEqual(new Date(storyDone.timestamp));
    expect(await rowsOf(userId)).toEqual({ users: 1, links: 1, tokens: 1 });
    expect(await outbox('user.deletion.completed', userId)).toEqual([]);

    const last = await report(userId, 'collaboration');
    const done = await saga(userId);
    expect(done).toMatchObject({ status: 'COMPLETED', completed_at: new Date(last.timestamp) });
    expect(done.steps.every((s) => s.status === 'DONE')).toBe(true);
    // The row goes, its provider links and refresh tokens with it.
    expect(await rowsOf(userId)).toEqual({ users: 0, links: 0, tokens: 0 });
    const [completed, ...more] = await outbox('user.deletion.completed', userId);
    expect(more).toEqual([]);
    expect(completed).toMatchObject({ serviceName: 'identity', userId, payload: { userId }, correlationId: `corr-${userId}`, causationId: last.id });
  });

  it('takes duplicate, late and unknown reports as nothing to do', async () => {
    const userId = await deleting();
    const first = await report(userId, 'story');
    // The same event redelivered (the inbox), and the step reporting again (a retry answered late).
    await report(userId, 'story', first);
    await report(userId, 'story');
    expect((await saga(userId)).steps.find((s) => s.service === 'story')).toMatchObject({ status: 'DONE', done_at: new Date(first.timestamp) });

    for (const service of ['audit', 'billing', 'collaboration', 'narration', 'notification', 'video']) await report(userId, service);
    const completed = await saga(userId);
    expect(completed.status).toBe('COMPLETED');
    // Reports after completion, of a step no saga has, and of a user nobody is deleting.
    await report(userId, 'billing');
    await report(userId, 'search');
    const stranger = randomUUID();
    await report(stranger, 'story');
    await report('not-a-uuid', 'story');
    expect(await saga(userId)).toEqual(completed);
    expect(await outbox('user.deletion.completed', userId)).toHaveLength(1);
    expect(await sql(`select 1 from identity.user_deletion where user_id = ?`, [stranger])).toEqual([]);
  });

  it('completes once when the two last reports are handled at once', async () => {
    const userId = await deleting();
    for (const service of ['audit', 'billing', 'narration', 'notification', 'story']) await report(userId, service);
    // The order is forced: a third connection holds the steps table while both reports start,
    // so both are under way (past the inbox) before either reads the steps. Without the saga's
    // row lock each would then see the other's step pending, and neither would complete it.
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query('begin');
      await holder.query('lock table identity.user_deletion_step in access exclusive mode');
      const both = Promise.all([report(userId, 'collaboration'), report(userId, 'video')]);
      await vi.waitFor(
        async () => {
          const [row] = await sql<{ n: number }>(`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`);
          expect(row!.n).toBe(2);
        },
        { timeout: 5_000, interval: 10 },
      );
      await holder.query('commit');
      await both;
    } finally {
      await holder.end();
    }
    const done = await saga(userId);
    expect(done.status).toBe('COMPLETED');
    expect(done.steps.every((s) => s.status === 'DONE')).toBe(true);
    expect(await rowsOf(userId)).toEqual({ users: 0, links: 0, tokens: 0 });
    expect(await outbox('user.deletion.completed', userId)).toHaveLength(1);
  });

  it('asks the silent steps again once per interval, with a new event each time, until they report', async () => {
    const userId = await deleting();
    for (const service of ['audit', 'billing', 'narration', 'story', 'video']) await report(userId, service);
    let now = at(RETRY_MS - 1);
    const retrier = retries(() => now);

    expect(await retrier.retryDue()).toBe(0);
    now = at(RETRY_MS);
    const before = committed;
    expect(await retrier.retryDue()).toBe(1);
    expect(committed).toBe(before + 1);
    // Asked once per interval, however often the loop looks.
    expect(await retrier.retryDue()).toBe(0);
    expect((await saga(userId)).steps.map((s) => [s.service, s.status, s.attempts, s.requested_at])).toEqual([
      ['audit', 'DONE', 1, T0],
      ['billing', 'DONE', 1, T0],
      ['collaboration', 'PENDING', 2, at(RETRY_MS)],
      ['narration', 'DONE', 1, T0],
      ['notification', 'PENDING', 2, at(RETRY_MS)],
      ['story', 'DONE', 1, T0],
      ['video', 'DONE', 1, T0],
    ]);

    await report(userId, 'notification');
    now = at(2 * RETRY_MS);
    expect(await retrier.retryDue()).toBe(1);
    const requests = await outbox('user.erasure.requested', userId);
    expect(requests.map((e) => e.payload)).toEqual([
      { userId, services: ['collaboration', 'notification'], attempt: 2, requestedAt: T0.toISOString() },
      { userId, services: ['collaboration'], attempt: 3, requestedAt: T0.toISOString() },
    ]);
    expect(new Set(requests.map((e) => e.id)).size).toBe(2);
    expect(requests[0]).toMatchObject({ serviceName: 'identity', userId, correlationId: `corr-${userId}` });

    // The late step reports: the saga completes, and nothing is asked any more.
    await report(userId, 'collaboration');
    expect((await saga(userId)).status).toBe('COMPLETED');
    expect((await saga(userId)).steps.find((s) => s.service === 'collaboration')!.attempts).toBe(3);
    now = at(10 * RETRY_MS);
    expect(await retrier.retryDue()).toBe(0);
    expect(await outbox('user.erasure.requested', userId)).toHaveLength(2);
  });

  it('lets two replicas looking at once ask each saga once', async () => {
    const users = [await deleting(), await deleting(), await deleting(), await deleting()];
    const now = at(RETRY_MS);
    const [a, b] = [retries(() => now), retries(() => now)];
    const asked = await Promise.all([a.retryDue(), b.retryDue(), a.retryDue(), b.retryDue()]);
    expect(asked.reduce((sum, n) => sum + n, 0)).toBe(users.length);
    for (const userId of users) {
      expect(await outbox('user.erasure.requested', userId)).toHaveLength(1);
      expect((await saga(userId)).steps.map((s) => s.attempts)).toEqual(ERASURE_STEPS.map(() => 2));
    }
  });

  it('runs in the background every interval once started, and stops', async () => {
    // On the real clock, this one.
    const userId = await deleting(new Date());
    const looping = new DeletionRetries({ orm: db.orm, logger, retryMs: 50, onEventsCommitted: () => {} });
    looping.start();
    try {
      await vi.waitFor(async () => expect((await saga(userId)).steps[0]!.attempts).toBeGreaterThanOrEqual(3), { timeout: 10_000, interval: 20 });
    } finally {
      await looping.stop();
    }
    const stopped = (await saga(userId)).steps[0]!.attempts;
    expect((await outbox('user.erasure.requested', userId)).map((e) => e.payload.attempt)).toEqual(Array.from({ length: stopped - 1 }, (_, i) => i + 2));
  });
});
