import { randomUUID } from 'node:crypto';
import type { MikroORM } from '@mikro-orm/postgresql';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { migratedSubgraphDatabase } from '../../test/support/database.js';
import type { EventEnvelope } from '../../platform/events/envelope.js';
import { createLogger } from '../../platform/log.js';
import { createSubgraphContext } from '../../platform/subgraph/context.js';
import type { Role } from '../../platform/internal-auth.js';
import { EventLogEntry } from './audit.entities.js';
import { audit } from './index.js';
import { eventLogConsumer } from './event-log.consumer.js';
import { auditResolvers } from './audit.resolvers.js';
import { loadConfig } from '../../platform/config.js';
import { InProcessTransport } from '../../platform/events/in-process.js';
import { OperationsService } from './operations.service.js';

/**
 * The consumer and the query on a real database, without a transport: what the event runtime
 * does around `handle` (the transaction) is mimicked here; test/audit.e2e.test.ts goes end to end.
 */
let db: Awaited<ReturnType<typeof migratedSubgraphDatabase>>;
let orm: MikroORM;
const logger = createLogger('silent');

beforeAll(async () => {
  db = await migratedSubgraphDatabase(audit, logger);
  orm = db.orm;
});
afterAll(async () => {
  await db?.close();
});

const envelope = (over: Partial<EventEnvelope> = {}): EventEnvelope => ({
  id: randomUUID(),
  type: 'probe.happened',
  serviceName: 'test',
  timestamp: new Date().toISOString(),
  version: 1,
  correlationId: 'corr-1',
  causationId: null,
  userId: null,
  payload: { n: 1 },
  ...over,
});

const handle = (event: EventEnvelope) =>
  orm.em.fork().transactional((em) => eventLogConsumer.handle(event, { em, event, emit: () => {}, log: logger, replaying: false }));

const rows = () => orm.em.fork().find(EventLogEntry, {}, { orderBy: { timestamp: 'asc', id: 'asc' } });
const reset = () => orm.em.fork().transactional((em) => eventLogConsumer.reset!(em));

const query = (args: Record<string, unknown>, roles: Role[] = ['USER', 'ADMIN']) => {
  const ctx = createSubgraphContext({
    serviceName: 'audit',
    em: orm.em.fork(),
    log: logger,
    caller: { userId: roles.length ? randomUUID() : null, roles },
    correlationId: 'test',
    onEventsCommitted: () => {},
  });
  const operations = new OperationsService({
    config: loadConfig({ INTERNAL_SECRET: 'x'.repeat(32) }),
    transport: new InProcessTransport(),
    topology: { mode: 'ALL_IN_ONE', subgraphs: () => [], publicUrl: () => 'http://127.0.0.1:4000' },
  });
  return (auditResolvers(operations).Query as { events: (...a: unknown[]) => Promise<any> }).events(null, args, ctx);
};

describe('event log', () => {
  beforeEach(reset);

  it('stores each envelope once, whatever JSON its payload is, and reset empties it', async () => {
    const events = [
      envelope({ timestamp: '2026-01-01T00:00:00.001Z', userId: randomUUID(), causationId: randomUUID() }),
      envelope({ timestamp: '2026-01-01T00:00:00.002Z', payload: 'a bare string' }),
      envelope({ timestamp: '2026-01-01T00:00:00.003Z', payload: null }),
      envelope({ timestamp: '2026-01-01T00:00:00.004Z', payload: [1, { b: [true] }] }),
    ];
    for (const event of events) await handle(event);
    await handle(events[0]!);
    const stored = await rows();
    expect(stored).toHaveLength(4);
    expect(stored.map((r) => r.payload)).toEqual(events.map((e) => e.payload));
    expect(stored[0]).toEqual({
      id: events[0]!.id,
      type: 'probe.happened',
      serviceName: 'test',
      timestamp: new Date('2026-01-01T00:00:00.001Z'),
      version: 1,
      correlationId: 'corr-1',
      causationId: events[0]!.causationId,
      userId: events[0]!.userId,
      payload: { n: 1 },
    });

    await reset();
    expect(await rows()).toEqual([]);
    // Replaying gives the same rows back.
    for (const event of events) await handle(event);
    expect(await rows()).toEqual(stored);
  });

  it('pages newest first with filters, equal timestamps ordered by id', async () => {
    const user = randomUUID();
    const at = '2026-02-02T00:00:00.000Z';
    const events = [
      envelope({ type: 'user.registered', userId: user, timestamp: '2026-02-01T00:00:00.000Z' }),
      envelope({ type: 'user.oauth.linked', userId: user, timestamp: at }),
      envelope({ type: 'user.login', userId: user, timestamp: at }),
      envelope({ type: 'story.chapter.published', timestamp: at }),
      envelope({ type: 'users.x', timestamp: '2026-02-03T00:00:00.000Z' }),
    ];
    for (const event of events) await handle(event);
    const newestFirst = [...events].sort((a, b) => b.timestamp.localeCompare(a.timestamp) || b.id.localeCompare(a.id)).map((e) => e.id);

    const ids = (connection: any) => connection.edges.map((e: any) => e.node.id);
    const all: string[] = [];
    let after: string | null = null;
    do {
      const page: any = await query({ first: 2, after });
      expect(page.totalCount).toBe(5);
      all.push(...ids(page));
      after = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
    } while (after);
    expect(all).toEqual(newestFirst);

    const idsOf = (pred: (e: EventEnvelope) => boolean) => newestFirst.filter((id) => pred(events.find((e) => e.id === id)!));
    expect(ids(await query({ type: 'user.*' }))).toEqual(idsOf((e) => e.type === 'user.registered' || e.type === 'user.login'));
    expect(ids(await query({ type: 'user.>' }))).toEqual(idsOf((e) => e.type.startsWith('user.')));
    expect(ids(await query({ type: 'user.login' }))).toEqual(idsOf((e) => e.type === 'user.login'));
    const mine = await query({ userId: user, type: '>', first: 1 });
    expect(mine.totalCount).toBe(3);
    expect(ids(mine)).toEqual(idsOf((e) => e.userId === user).slice(0, 1));
    expect(ids(await query({ userId: user, after: mine.pageInfo.endCursor }))).toEqual(idsOf((e) => e.userId === user).slice(1));
  });

  it('is for admins, and refuses bad arguments', async () => {
    const codeOf = (promise: Promise<unknown>) => promise.then(() => 'ok', (e: { code: string; field: string | null }) => `${e.code}:${e.field}`);
    expect(await codeOf(query({}, ['USER']))).toBe('FORBIDDEN:null');
    expect(await codeOf(query({}, []))).toBe('UNAUTHENTICATED:null');
    expect(await codeOf(query({ type: 'user.>.x' }))).toBe('BAD_USER_INPUT:type');
    expect(await codeOf(query({ userId: 'bob' }))).toBe('BAD_USER_INPUT:userId');
    expect(await codeOf(query({ after: 'nope' }))).toBe('BAD_USER_INPUT:after');
    expect(await codeOf(query({ first: 101 }))).toBe('BAD_USER_INPUT:first');
  });
});
