import { randomUUID } from 'node:crypto';
import type { MikroORM } from '@mikro-orm/postgresql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migratedSubgraphDatabase } from '../../test/support/database.js';
import type { EventEnvelope, NewEvent } from '../../platform/events/envelope.js';
import { createLogger } from '../../platform/log.js';
import { EventLogEntry } from './audit.entities.js';
import { erasureConsumer } from './erasure.consumer.js';
import { eventLogConsumer } from './event-log.consumer.js';
import { audit } from './index.js';
import { ERASED } from './redaction.rules.js';

/**
 * Audit's step of the deletion saga on a real database: the erasure redacts the event log, and
 * the log stores later events about the user redacted. The event runtime's transaction is
 * mimicked here, as in event-log.int.test.ts.
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

let clock = Date.parse('2026-12-01T10:00:00.000Z');
const envelope = (over: Partial<EventEnvelope>): EventEnvelope => ({
  id: randomUUID(),
  type: 'probe.happened',
  serviceName: 'test',
  timestamp: new Date(clock++).toISOString(),
  version: 1,
  correlationId: 'corr-1',
  causationId: null,
  userId: null,
  payload: {},
  ...over,
});

const log = (event: EventEnvelope) =>
  orm.em.fork().transactional((em) => eventLogConsumer.handle(event, { em, event, emit: () => {}, log: logger, replaying: false }));
const logMany = (events: EventEnvelope[]) => orm.em.fork().transactional((em) => eventLogConsumer.handleMany!(events, { em, log: logger, replaying: false }));
/** Handles an event with the erasure consumer; returns what it emitted. */
const erase = async (event: EventEnvelope) => {
  const emitted: NewEvent[] = [];
  await orm.em.fork().transactional((em) => erasureConsumer.handle(event, { em, event, emit: (e) => emitted.push(e), log: logger, replaying: false }));
  return emitted;
};
const payloadOf = async (id: string) => (await orm.em.fork().findOneOrFail(EventLogEntry, { id })).payload;
const rowOf = (id: string) => orm.em.fork().findOneOrFail(EventLogEntry, { id });

const registered = (userId: string, name: string) =>
  envelope({ type: 'user.registered', serviceName: 'identity', userId, payload: { userId, email: `${name}@example.com`, displayName: name, locale: 'en', provider: 'local' } });
const invited = (authorId: string, inviteeId: string) =>
  envelope({
    type: 'collaboration.invitation.sent',
    serviceName: 'collaboration',
    userId: authorId,
    payload: { invitationId: randomUUID(), inviterId: authorId, inviteeUserId: inviteeId, inviteeName: 'Ada Lovelace', inviteeEmail: 'ada@example.com', storyTitle: 'Night', position: 1 },
  });

describe("audit's erasure step", () => {
  it("redacts the user's events and those naming them, leaves others, reports, and stores later events redacted", async () => {
    const ada = randomUUID();
    const bob = randomUUID();
    const adaRegistered = registered(ada, 'ada');
    const bobRegistered = registered(bob, 'bob');
    const adaInvited = invited(bob, ada);
    const bobInvitesOther = invited(bob, randomUUID());
    for (const event of [adaRegistered, bobRegistered, adaInvited, bobInvitesOther]) await log(event);
    const before = await rowOf(adaRegistered.id);

    const deleted = envelope({ type: 'user.deleted', serviceName: 'identity', userId: ada, payload: { userId: ada } });
    expect(await erase(deleted)).toEqual([{ type: 'user.erasure.completed', userId: ada, payload: { userId: ada, service: 'audit' } }]);

    // The envelope stays whole; of the payload, ids, numbers and enum values.
    expect(await rowOf(adaRegistered.id)).toEqual({
      ...before,
      payload: { userId: ada, email: ERASED, displayName: ERASED, locale: ERASED, provider: 'local' },
    });
    // Bob's invitation of Ada names her: redacted. Bob's own data elsewhere is not.
    expect(await payloadOf(adaInvited.id)).toEqual({ ...(adaInvited.payload as object), inviteeName: ERASED, inviteeEmail: ERASED, storyTitle: ERASED });
    expect(await payloadOf(bobRegistered.id)).toEqual(bobRegistered.payload);
    expect(await payloadOf(bobInvitesOther.id)).toEqual(bobInvitesOther.payload);

    // Later events about Ada (her user, or naming her) are stored redacted, one at a time and in a batch.
    const late = envelope({ type: 'user.updated', serviceName: 'identity', userId: ada, payload: { userId: ada, changes: { displayName: 'Ada L.' } } });
    await log(late);
    expect(await payloadOf(late.id)).toEqual({ userId: ada, changes: { displayName: ERASED } });
    const lateInvite = invited(bob, ada);
    const bobLater = registered(bob, 'bob');
    const report = envelope({ type: 'user.erasure.completed', serviceName: 'billing', userId: ada, payload: { userId: ada, service: 'billing' } });
    await logMany([lateInvite, bobLater, report]);
    expect(await payloadOf(lateInvite.id)).toEqual({ ...(lateInvite.payload as object), inviteeName: ERASED, inviteeEmail: ERASED, storyTitle: ERASED });
    expect(await payloadOf(bobLater.id)).toEqual(bobLater.payload);
    expect(await payloadOf(report.id)).toEqual(report.payload);

    // Asked again (its report was late): nothing more to redact, and it reports again.
    const again = envelope({ type: 'user.erasure.requested', serviceName: 'identity', userId: ada, payload: { userId: ada, services: ['audit', 'story'], attempt: 2, requestedAt: deleted.timestamp } });
    expect(await erase(again)).toEqual([{ type: 'user.erasure.completed', userId: ada, payload: { userId: ada, service: 'audit' } }]);
    expect(await payloadOf(adaRegistered.id)).toEqual({ userId: ada, email: ERASED, displayName: ERASED, locale: ERASED, provider: 'local' });
    // Recorded once, as of the deletion.
    const erased = await orm.em.fork().getConnection().execute(`select "erased_at" = ?::timestamptz as "asDeleted" from "audit"."erased_user" where "user_id" = ?`, [deleted.timestamp, ada]);
    expect(erased).toEqual([{ asDeleted: true }]);

    // A request to other steps asks nothing of audit.
    expect(await erase(envelope({ type: 'user.erasure.requested', userId: bob, payload: { userId: bob, services: ['story'], attempt: 2, requestedAt: deleted.timestamp } }))).toEqual([]);
    expect(await payloadOf(bobRegistered.id)).toEqual(bobRegistered.payload);
  });

  it('reports for an id that names nobody the log could hold', async () => {
    expect(await erase(envelope({ type: 'user.deleted', payload: { userId: 'not-a-uuid' } }))).toEqual([
      { type: 'user.erasure.completed', userId: 'not-a-uuid', payload: { userId: 'not-a-uuid', service: 'audit' } },
    ]);
  });

  it('a replay of the log stores the erased user redacted again', async () => {
    const cy = randomUUID();
    const cyRegistered = registered(cy, 'cy');
    await log(cyRegistered);
    await erase(envelope({ type: 'user.deleted', userId: cy, payload: { userId: cy } }));
    await orm.em.fork().transactional((em) => eventLogConsumer.reset!(em));
    await logMany([cyRegistered, registered(randomUUID(), 'dee')]);
    expect(await payloadOf(cyRegistered.id)).toEqual({ userId: cy, email: ERASED, displayName: ERASED, locale: ERASED, provider: 'local' });
  });
});
