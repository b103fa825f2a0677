import { randomBytes, randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { openDatabase } from '../../platform/db/database.js';
import type { NewEvent } from '../../platform/events/envelope.js';
import { recordEvents } from '../../platform/events/outbox.js';
import { createLogger } from '../../platform/log.js';
import { FOR_NOTIFICATION, seal, unseal } from '../../platform/sealed.js';
import { migratedSubgraphDatabase } from '../../test/support/database.js';
import { queueDeliveries, type DeliveryRequest } from './deliveries.js';
import { DeliveryWorker, LISTEN_APPLICATION_NAME, type DeliveryWorkerOptions } from './delivery.worker.js';
import { notificationMigrations } from './migrations/index.js';
import { Delivery, notificationEntities, Suppression } from './notification.entities.js';
import type { NotificationRequested } from './notification.events.js';
import { DeliveryError, type OutgoingEmail, type OutgoingSms, type Sender, type SendResult } from './providers/channel.js';
import { databaseTemplateStore } from './templates.service.js';
import { defaultTemplateStore } from './templates/defaults.js';
import { UrlCache } from './templates/sources.js';
import type { TemplateStore } from './templates/template.js';

/**
 * The delivery worker on a real PostgreSQL: the delivery table is the send queue (SKIP LOCKED
 * claims under a lease), senders are in-test objects that record what they were asked to send.
 */
const logger = createLogger('silent');
const SECRET = randomBytes(32).toString('base64url');
let db: Awaited<ReturnType<typeof migratedSubgraphDatabase>>;
let orm: MikroORM;

beforeAll(async () => {
  db = await migratedSubgraphDatabase({ name: 'notification', entities: notificationEntities, migrations: notificationMigrations }, logger);
  orm = db.orm;
});

afterAll(async () => {
  await db?.close();
});

// Each test starts from an empty queue: a row another test left behind is never claimed here.
beforeEach(async () => {
  await orm.em.fork().getConnection().execute(`truncate notification.delivery, notification.suppression, notification.outbox`);
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type Behaviour<M> = (message: M, signal: AbortSignal) => Promise<SendResult>;

/** A Sender that records every call and answers as `behave` says. */
function recordingSender<M extends { deliveryId: string }>(name: string, behave?: Behaviour<M>): Sender<M> & { calls: M[] } {
  const calls: M[] = [];
  return {
    name,
    calls,
    async send(message, { signal }) {
      calls.push(message);
      return behave ? behave(message, signal) : { provider: name, providerMessageId: `${name}-${message.deliveryId}` };
    },
  };
}

/** Never answers; an abort ends it with the abort's reason (the port's contract). */
const hangUntilAborted = <M>(): Behaviour<M> => (_message, signal) =>
  new Promise<SendResult>((_resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });

function worker(options: Partial<DeliveryWorkerOptions> & { email?: Sender<OutgoingEmail>; sms?: Sender<OutgoingSms> } = {}) {
  const { email = recordingSender<OutgoingEmail>('email-test'), sms = recordingSender<OutgoingSms>('sms-test'), ...rest } = options;
  return new DeliveryWorker({
    orm,
    senders: { email, sms },
    store: databaseTemplateStore,
    defaults: defaultTemplateStore(),
    sources: { templatesDir: tmpdir(), cacheTtlMs: 0, maxBytes: 256 * 1024, timeoutMs: 1000, cache: new UrlCache() },
    unseal: (sealed) => unseal(SECRET, FOR_NOTIFICATION, sealed),
    statusCallbackUrl: () => null,
    concurrency: 4,
    pollMs: 50,
    leaseMs: 30_000,
    maxAttempts: 3,
    retryBaseMs: 50,
    logger,
    onEventsCommitted: () => {},
    ...rest,
  });
}

let seq = 0;
function request(overrides: Partial<DeliveryRequest> = {}): DeliveryRequest {
  const n = ++seq;
  const channel = overrides.channel ?? 'EMAIL';
  return {
    dedupeKey: `test:${randomUUID()}`,
    cause: 'user.registered',
    eventId: randomUUID(),
    campaignId: null,
    userId: randomUUID(),
    channel,
    category: 'ACCOUNT',
    templateKey: 'user.registered',
    locale: 'en',
    address: channel === 'EMAIL' ? `reader${n}@example.test` : `+3361234${String(n).padStart(4, '0')}`,
    variables: { displayName: 'Ada', appLink: 'https://app.storyloom.test/' },
    correlationId: `corr-${n}`,
    ...overrides,
  };
}

/** Queues deliveries as a consumer does: in one transaction, with their notification.requested events. */
async function queue(...requests: DeliveryRequest[]): Promise<string[]> {
  const emitted: NewEvent[] = [];
  await orm.em.fork().transactional(async (em: EntityManager) => {
    const result = await queueDeliveries(em, (event) => emitted.push(event), requests);
    expect(result.created).toBe(requests.length);
    await recordEvents(em, { serviceName: 'notification' }, emitted);
  });
  return emitted.map((event) => (event.payload as NotificationRequested).deliveryId);
}

const row = async (id: string) => orm.em.fork().findOneOrFail(Delivery, { id });
const rows = async (ids: string[]) => orm.em.fork().find(Delivery, { id: { $in: ids } });

interface OutboxRow {
  type: string;
  envelope: { userId: string | null; correlationId: string | null; payload: Record<string, unknown> };
}
const outbox = async (deliveryId: string) =>
  orm.em
    .fork()
    .getConnection()
    .execute<OutboxRow[]>(`select type, envelope from notification.outbox where envelope->'payload'->>'deliveryId' = ? order by position`, [deliveryId]);
const outboxTypes = async (deliveryId: string) => (await outbox(deliveryId)).map((r) => r.type);
const countOutbox = async (type: string) =>
  Number((await orm.em.fork().getConnection().execute<{ n: string }[]>(`select count(*) as n from notification.outbox where type = ?`, [type]))[0]!.n);

async function withWorkers<T>(workers: DeliveryWorker[], body: () => Promise<T>): Promise<T> {
  try {
    for (const w of workers) await w.start();
    return await body();
  } finally {
    for (const w of workers) await w.stop();
  }
}

describe('the delivery worker', () => {
  it('renders a queued email from the default template in the person’s locale and sends it once', async () => {
    const email = recordingSender<OutgoingEmail>('email-test');
    const w = worker({ email });
    const req = request({ locale: 'fr', address: 'Amelie@Example.TEST', variables: { displayName: 'Amélie', appLink: 'https://app.storyloom.test/' } });
    await withWorkers([w], async () => {
      const [id] = await queue(req);
      await vi.waitFor(async () => expect((await row(id!)).status).toBe('SENT'), { timeout: 10_000, interval: 25 });
      // Nothing more goes out on later polls.
      await sleep(200);
      expect(email.calls).toHaveLength(1);
      const [sent] = email.calls;
      expect(sent).toMatchObject({ deliveryId: id, to: 'amelie@example.test', subject: 'Bienvenue sur Storyloom, Amélie' });
      expect(sent!.text).toContain('Bonjour Amélie,');
      // French typography: a no-break space before the colon.
      expect(sent!.text).toMatch(/Commencer à écrire\s: https:\/\/app\.storyloom\.test\/$/);
      expect(sent!.html).toContain('<a href="https://app.storyloom.test/">Commencer à écrire</a>');

      expect(await row(id!)).toMatchObject({ status: 'SENT', provider: 'email-test', providerMessageId: `email-test-${id}`, attempts: 1, leaseUntil: null, errorCode: null });
      const events = await outbox(id!);
      expect(events.map((e) => e.type)).toEqual(['notification.requested', 'notification.sent']);
      expect(events[1]!.envelope).toMatchObject({ userId: req.userId, correlationId: req.correlationId, payload: { deliveryId: id, channel: 'EMAIL', provider: 'email-test', attempts: 1 } });
    });
  });

  it('shares the queue between two workers: each of 50 deliveries is sent exactly once', async () => {
    // A second process: its own connection pool.
    const otherOrm = await openDatabase({ url: db.url, schema: 'notification', entities: notificationEntities, migrations: notificationMigrations, logger });
    const slow: Behaviour<OutgoingEmail> = async (message) => {
      await sleep(5 + Math.floor(Math.random() * 15));
      return { provider: 'email-test', providerMessageId: `email-test-${message.deliveryId}` };
    };
    const emailA = recordingSender<OutgoingEmail>('email-test', slow);
    const emailB = recordingSender<OutgoingEmail>('email-test', slow);
    const a = worker({ email: emailA, concurrency: 5 });
    const b = worker({ email: emailB, concurrency: 5, orm: otherOrm });
    try {
      await withWorkers([a, b], async () => {
        const ids = await queue(...Array.from({ length: 50 }, () => request()));
        await vi.waitFor(async () => expect((await rows(ids)).filter((r) => r.status === 'SENT')).toHaveLength(50), { timeout: 20_000, interval: 50 });
        await sleep(200);
        const sent = [...emailA.calls, ...emailB.calls].map((m) => m.deliveryId);
        expect(sent).toHaveLength(50);
        expect(new Set(sent)).toEqual(new Set(ids));
        expect((await rows(ids)).every((r) => r.attempts === 1)).toBe(true);
        expect(await countOutbox('notification.sent')).toBe(50);
      });
    } finally {
      await otherOrm.close(true);
    }
  });

  it('retries a transiently failing delivery in rounds with backoff, then fails it after maxAttempts', async () => {
    const seen: { attempts: number; nextAttemptAt: Date; errorCode: string | null }[] = [];
    const email = recordingSender<OutgoingEmail>('email-test', async (message) => {
      const r = await row(message.deliveryId);
      seen.push({ attempts: r.attempts, nextAttemptAt: r.nextAttemptAt, errorCode: r.errorCode });
      throw new DeliveryError('TRANSIENT', 'email-test answered 503');
    });
    const retryBaseMs = 100;
    await withWorkers([worker({ email, maxAttempts: 3, retryBaseMs })], async () => {
      const [id] = await queue(request());
      await vi.waitFor(async () => expect((await row(id!)).status).toBe('FAILED'), { timeout: 10_000, interval: 25 });
      await sleep(300);
      expect(email.calls).toHaveLength(3);
      expect(seen.map((s) => s.attempts)).toEqual([1, 2, 3]);
      // Between rounds the row was QUEUED with the round's error and a later due time, doubling.
      expect(seen.map((s) => s.errorCode)).toEqual([null, 'TRANSIENT', 'TRANSIENT']);
      for (let i = 1; i < seen.length; i++) {
        expect(seen[i]!.nextAttemptAt.getTime() - seen[i - 1]!.nextAttemptAt.getTime()).toBeGreaterThanOrEqual(retryBaseMs * 2 ** (i - 1));
      }
      expect(await row(id!)).toMatchObject({ status: 'FAILED', attempts: 3, errorCode: 'TRANSIENT', error: 'email-test answered 503', leaseUntil: null, provider: null });
      const events = await outbox(id!);
      expect(events.map((e) => e.type)).toEqual(['notification.requested', 'notification.failed']);
      // The event tells the code in a few words; the provider's text stays in the row.
      expect(events[1]!.envelope.payload).toEqual({ deliveryId: id, channel: 'EMAIL', provider: null, code: 'TRANSIENT', error: 'The providers kept failing (TRANSIENT)' });
    });
  });

  it('fails a rejected delivery after its first round', async () => {
    const sms = recordingSender<OutgoingSms>('sms-test', async () => {
      throw new DeliveryError('REJECTED', 'sms-test refused the message (400)');
    });
    await withWorkers([worker({ sms, maxAttempts: 5 })], async () => {
      const [id] = await queue(request({ channel: 'SMS' }));
      await vi.waitFor(async () => expect((await row(id!)).status).toBe('FAILED'), { timeout: 10_000, interval: 25 });
      await sleep(200);
      expect(sms.calls).toHaveLength(1);
      expect(sms.calls[0]!.body).toBe('Welcome to Storyloom, Ada! Start here: https://app.storyloom.test/');
      expect(await row(id!)).toMatchObject({ status: 'FAILED', attempts: 1, errorCode: 'REJECTED' });
      expect(await outboxTypes(id!)).toEqual(['notification.requested', 'notification.failed']);
    });
  });

  it('sends a delivery whose worker died holding it, once its lease runs out', async () => {
    const doomedEmail = recordingSender<OutgoingEmail>('email-doomed', hangUntilAborted());
    // One send at a time: frozen on its one send, it claims nothing more, as a dead process would not.
    const doomed = worker({ email: doomedEmail, leaseMs: 60_000, concurrency: 1 });
    await doomed.start();
    try {
      const [id] = await queue(request());
      await vi.waitFor(() => expect(doomedEmail.calls).toHaveLength(1), { timeout: 10_000, interval: 25 });
      expect((await row(id!)).leaseUntil!.getTime()).toBeGreaterThan(Date.now());

      // While the lease holds, nobody else takes the row.
      const heirEmail = recordingSender<OutgoingEmail>('email-heir');
      const heir = worker({ email: heirEmail });
      await withWorkers([heir], async () => {
        await sleep(300);
        expect(heirEmail.calls).toHaveLength(0);
        // The doomed worker is gone for good: its lease runs out.
        await orm.em.fork().getConnection().execute(`update notification.delivery set lease_until = now() - interval '1 second' where id = ?`, [id]);
        await vi.waitFor(async () => expect((await row(id!)).status).toBe('SENT'), { timeout: 10_000, interval: 25 });
      });
      expect(heirEmail.calls).toHaveLength(1);
      expect(await row(id!)).toMatchObject({ status: 'SENT', provider: 'email-heir', attempts: 2 });

      // The doomed worker's send ends at last: the row is the heir's and stays as the heir left it.
      await doomed.stop();
      expect(await row(id!)).toMatchObject({ status: 'SENT', provider: 'email-heir', attempts: 2, leaseUntil: null, errorCode: null });
      expect(await outboxTypes(id!)).toEqual(['notification.requested', 'notification.sent']);
    } finally {
      await doomed.stop();
    }
  });

  it('opens a sealed variable only to render it, and fails a delivery whose value does not open without stopping the worker', async () => {
    const email = recordingSender<OutgoingEmail>('email-test');
    const inviteUrl = `https://app.storyloom.test/invitations/${randomUUID()}`;
    const invitation = (sealed: string) =>
      request({
        cause: 'collaboration.invitation.sent',
        category: 'COLLABORATION',
        templateKey: 'collaboration.invitation.sent',
        userId: null,
        variables: { inviteeName: 'Bea', inviterName: 'Ada', storyTitle: 'The Loom', characterName: 'Weaver', inviteLink: { $sealed: sealed }, expiresAt: '2030-01-31T12:00:00.000Z' },
      });
    await withWorkers([worker({ email, maxAttempts: 2, retryBaseMs: 50 })], async () => {
      const [good] = await queue(invitation(seal(SECRET, FOR_NOTIFICATION, inviteUrl)));
      await vi.waitFor(async () => expect((await row(good!)).status).toBe('SENT'), { timeout: 10_000, interval: 25 });
      expect(email.calls).toHaveLength(1);
      expect(email.calls[0]!.text).toContain(`Accept the invitation: ${inviteUrl}`);
      expect(email.calls[0]!.html).toContain(`href="${inviteUrl}"`);
      // Stored and announced sealed: the link is nowhere in the database.
      expect((await row(good!)).variables.inviteLink).toEqual({ $sealed: expect.any(String) });
      const [leaks] = await orm.em
        .fork()
        .getConnection()
        .execute<{ n: string }[]>(`select (select count(*) from notification.delivery where variables::text like ?) + (select count(*) from notification.outbox where envelope::text like ?) as n`, [
          `%${inviteUrl}%`,
          `%${inviteUrl}%`,
        ]);
      expect(Number(leaks!.n)).toBe(0);

      // Sealed under another secret: it never opens, the worker gives up after maxAttempts rounds.
      const [bad] = await queue(invitation(seal(randomBytes(32).toString('base64url'), FOR_NOTIFICATION, inviteUrl)));
      await vi.waitFor(async () => expect((await row(bad!)).status).toBe('FAILED'), { timeout: 10_000, interval: 25 });
      expect(await row(bad!)).toMatchObject({ status: 'FAILED', attempts: 2, errorCode: 'INTERNAL', error: expect.stringMatching(/does not open/) });
      expect(email.calls.map((m) => m.deliveryId)).toEqual([good]);
      expect(await outboxTypes(bad!)).toEqual(['notification.requested', 'notification.failed']);

      // The worker is still at work.
      const [after] = await queue(request());
      await vi.waitFor(async () => expect((await row(after!)).status).toBe('SENT'), { timeout: 10_000, interval: 25 });
    });
  });

  it('suppresses, without sending, a delivery whose address bounced after it was queued', async () => {
    const email = recordingSender<OutgoingEmail>('email-test');
    const w = worker({ email });
    const [id] = await queue(request({ address: 'Bounced@Example.TEST' }));
    expect((await row(id!)).status).toBe('QUEUED');
    const em = orm.em.fork();
    em.create(Suppression, { channel: 'EMAIL', address: 'bounced@example.test', reason: 'hard bounce', kind: 'BOUNCE', deliveryId: null, createdAt: new Date() });
    await em.flush();
    await withWorkers([w], async () => {
      await vi.waitFor(async () => expect((await row(id!)).status).toBe('SUPPRESSED'), { timeout: 10_000, interval: 25 });
      await sleep(200);
    });
    expect(email.calls).toHaveLength(0);
    expect(await row(id!)).toMatchObject({ status: 'SUPPRESSED', errorCode: 'SUPPRESSED', provider: null, leaseUntil: null });
    expect(await outboxTypes(id!)).toEqual(['notification.requested']);
  });

  it('hands a send in flight back to the queue when stopped, for the next worker to send', async () => {
    const stoppingEmail = recordingSender<OutgoingEmail>('email-stopping', hangUntilAborted());
    // One round only: were the interrupted send counted as a failed round, the row would end FAILED.
    const stopping = worker({ email: stoppingEmail, maxAttempts: 1 });
    await stopping.start();
    const [id] = await queue(request());
    try {
      await vi.waitFor(() => expect(stoppingEmail.calls).toHaveLength(1), { timeout: 10_000, interval: 25 });
    } finally {
      await stopping.stop();
    }
    const handedBack = await row(id!);
    expect(handedBack).toMatchObject({ status: 'QUEUED', attempts: 0, leaseUntil: null, errorCode: null, error: null });
    expect(handedBack.nextAttemptAt.getTime()).toBeLessThanOrEqual(Date.now());
    expect(await outboxTypes(id!)).toEqual(['notification.requested']);

    const nextEmail = recordingSender<OutgoingEmail>('email-next');
    await withWorkers([worker({ email: nextEmail, maxAttempts: 1 })], async () => {
      await vi.waitFor(async () => expect((await row(id!)).status).toBe('SENT'), { timeout: 10_000, interval: 25 });
    });
    expect(nextEmail.calls).toHaveLength(1);
    expect(await row(id!)).toMatchObject({ status: 'SENT', provider: 'email-next', attempts: 1 });
    expect(await outboxTypes(id!)).toEqual(['notification.requested', 'notification.sent']);
  });

  it('ends a send before its lease runs out, however long rendering took', async () => {
    const leaseMs = 1000;
    let slowOnce = true;
    // A template store that takes most of the lease to answer once (a slow database, a URL source).
    const slowStore = (em: EntityManager): TemplateStore => {
      const store = databaseTemplateStore(em);
      return {
        async find(...args) {
          if (slowOnce) {
            slowOnce = false;
            await sleep(600);
          }
          return store.find(...args);
        },
      };
    };
    const ends: { abortedAt: number; leaseUntil: number }[] = [];
    const email = recordingSender<OutgoingEmail>('email-test', async (message, signal) => {
      const leaseUntil = (await row(message.deliveryId)).leaseUntil!.getTime();
      try {
        return await hangUntilAborted<OutgoingEmail>()(message, signal);
      } finally {
        ends.push({ abortedAt: Date.now(), leaseUntil });
      }
    });
    // A long backoff: one round is all this test looks at.
    await withWorkers([worker({ email, store: slowStore, leaseMs, retryBaseMs: 60_000 })], async () => {
      const [id] = await queue(request());
      await vi.waitFor(() => expect(ends).toHaveLength(1), { timeout: 10_000, interval: 25 });
      expect(ends[0]!.abortedAt).toBeLessThan(ends[0]!.leaseUntil);
      // The timed-out round is requeued by the worker that still held the lease.
      await vi.waitFor(async () => expect(await row(id!)).toMatchObject({ status: 'QUEUED', attempts: 1, leaseUntil: null, errorCode: 'INTERNAL' }), { timeout: 10_000, interval: 25 });
    });
  });

  it('holds a recipient to rateLimitPerHour, counted in the table, without using up rounds or ever failing for it', async () => {
    const address = `limited-${randomUUID()}@example.test`;
    const email = recordingSender<OutgoingEmail>('email-test');
    const to = (m: OutgoingEmail[]) => m.filter((c) => c.to === address);
    // One round only: were a held-back delivery counted as a round, it would end FAILED.
    const options = { email, rateLimitPerHour: 2, maxAttempts: 1 };
    let held: string[] = [];
    await withWorkers([worker(options)], async () => {
      // Four at once, claimed together: two go, two wait.
      const ids = await queue(...Array.from({ length: 4 }, () => request({ address })));
      await vi.waitFor(async () => expect((await rows(ids)).map((r) => r.status).sort()).toEqual(['QUEUED', 'QUEUED', 'SENT', 'SENT']), { timeout: 10_000, interval: 25 });
      await sleep(200);
      expect(to(email.calls)).toHaveLength(2);
      held = (await rows(ids)).filter((r) => r.status === 'QUEUED').map((r) => r.id);
      for (const r of await rows(held)) expect(r).toMatchObject({ attempts: 0, leaseUntil: null, errorCode: 'RATE_LIMITED' });
      // Another address is not held back.
      const [other] = await queue(request());
      await vi.waitFor(async () => expect((await row(other!)).status).toBe('SENT'), { timeout: 10_000, interval: 25 });
    });

    // Another worker (a restart, another replica) counts the same sends: due again, they wait again,
    // until the first of the two sends is an hour old.
    const sent = (await orm.em.fork().find(Delivery, { address, status: 'SENT' })).map((r) => r.updatedAt.getTime());
    const email2 = recordingSender<OutgoingEmail>('email-test');
    await withWorkers([worker({ ...options, email: email2 })], async () => {
      for (let round = 0; round < 3; round++) {
        await orm.em.fork().getConnection().execute(`update notification.delivery set next_attempt_at = now() where id in (?, ?)`, held);
        await vi.waitFor(async () => expect((await rows(held)).every((r) => r.nextAttemptAt.getTime() > Date.now() + 30 * 60_000)).toBe(true), { timeout: 10_000, interval: 25 });
      }
      for (const r of await rows(held)) {
        expect(r).toMatchObject({ status: 'QUEUED', attempts: 0, errorCode: 'RATE_LIMITED' });
        expect(r.nextAttemptAt.getTime()).toBe(Math.min(...sent) + 3_600_000);
      }
      expect(email2.calls).toHaveLength(0);

      // An hour later, both go.
      await orm.em.fork().getConnection().execute(`update notification.delivery set updated_at = updated_at - interval '61 minutes' where address = ? and status = 'SENT'`, [address]);
      await orm.em.fork().getConnection().execute(`update notification.delivery set next_attempt_at = now() where id in (?, ?)`, held);
      await vi.waitFor(async () => expect((await rows(held)).map((r) => r.status)).toEqual(['SENT', 'SENT']), { timeout: 10_000, interval: 25 });
      for (const r of await rows(held)) expect(r).toMatchObject({ attempts: 1, errorCode: null });
      expect(to(email2.calls)).toHaveLength(2);
      for (const id of held) expect(await outboxTypes(id)).toEqual(['notification.requested', 'notification.sent']);
    });
  });

  it('counts a provider’s 429 as a round like any other failure', async () => {
    const email = recordingSender<OutgoingEmail>('email-test', async () => {
      throw new DeliveryError('RATE_LIMITED', 'email-test is rate limiting us (429)', 10);
    });
    await withWorkers([worker({ email, maxAttempts: 2, rateLimitPerHour: 100 })], async () => {
      const [id] = await queue(request());
      await vi.waitFor(async () => expect((await row(id!)).status).toBe('FAILED'), { timeout: 10_000, interval: 25 });
      expect(email.calls).toHaveLength(2);
      expect(await row(id!)).toMatchObject({ status: 'FAILED', attempts: 2, errorCode: 'RATE_LIMITED' });
      expect((await outbox(id!))[1]!.envelope.payload).toMatchObject({ code: 'RATE_LIMITED', error: 'The providers kept rate limiting us (RATE_LIMITED)' });
    });
  });

  it.each(['sent', 'failed'] as const)('changes nothing and announces nothing when a send that outlived its lease ends %s after another worker sent it', async (ending) => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    // Ignores its signal: an answer that comes after all, past the lease.
    const lateEmail = recordingSender<OutgoingEmail>('email-late', async (message) => {
      await gate;
      if (ending === 'failed') throw new DeliveryError('REJECTED', 'email-late refused the message (400)');
      return { provider: 'email-late', providerMessageId: `email-late-${message.deliveryId}` };
    });
    const late = worker({ email: lateEmail, leaseMs: 60_000, concurrency: 1 });
    await late.start();
    try {
      const [id] = await queue(request());
      await vi.waitFor(() => expect(lateEmail.calls).toHaveLength(1), { timeout: 10_000, interval: 25 });
      await orm.em.fork().getConnection().execute(`update notification.delivery set lease_until = now() - interval '1 second' where id = ?`, [id]);
      await withWorkers([worker({ email: recordingSender<OutgoingEmail>('email-heir') })], async () => {
        await vi.waitFor(async () => expect((await row(id!)).status).toBe('SENT'), { timeout: 10_000, interval: 25 });
      });
      const heirs = await row(id!);
      open();
      await vi.waitFor(() => expect((late as unknown as { inFlight: number }).inFlight).toBe(0), { timeout: 10_000, interval: 10 });
      expect(await row(id!)).toEqual(heirs);
      expect(heirs).toMatchObject({ status: 'SENT', provider: 'email-heir', providerMessageId: `email-heir-${id}`, attempts: 2, errorCode: null });
      expect(await outboxTypes(id!)).toEqual(['notification.requested', 'notification.sent']);
    } finally {
      open();
      await late.stop();
    }
  });

  it('lets a webhook that got there first keep its status, adds the provider’s ids, and announces no send', async () => {
    const email = recordingSender<OutgoingEmail>('email-test', async (message) => {
      // The provider's report arrives before its answer to the send.
      await orm.em.fork().getConnection().execute(`update notification.delivery set status = 'DELIVERED', updated_at = now() where id = ?`, [message.deliveryId]);
      return { provider: 'email-test', providerMessageId: `email-test-${message.deliveryId}` };
    });
    await withWorkers([worker({ email })], async () => {
      const [id] = await queue(request());
      await vi.waitFor(async () => expect((await row(id!)).leaseUntil).toBeNull(), { timeout: 10_000, interval: 25 });
      await vi.waitFor(async () => expect(await row(id!)).toMatchObject({ status: 'DELIVERED', provider: 'email-test', providerMessageId: `email-test-${id}`, attempts: 1, leaseUntil: null }), {
        timeout: 10_000,
        interval: 25,
      });
      await sleep(200);
      expect(email.calls).toHaveLength(1);
      expect(await outboxTypes(id!)).toEqual(['notification.requested']);
    });
  });

  it('keeps the provider’s text, less the address, in the row only; the event says the code in a few words', async () => {
    const emailAddress = `reader-${randomUUID()}@example.test`;
    const email = recordingSender<OutgoingEmail>('email-test', async () => {
      throw new DeliveryError('REJECTED', `email-test refused the message (400): mailbox ${emailAddress.toUpperCase()} does not exist`);
    });
    const sms = recordingSender<OutgoingSms>('sms-test', async (message) => {
      throw new DeliveryError('REJECTED', `sms-test refused the message (400): ${message.to.slice(1)} (${message.to}) is not reachable`);
    });
    await withWorkers([worker({ email, sms })], async () => {
      const [mail] = await queue(request({ address: emailAddress }));
      const phoneRequest = request({ channel: 'SMS' });
      const [text] = await queue(phoneRequest);
      await vi.waitFor(async () => expect((await rows([mail!, text!])).map((r) => r.status)).toEqual(['FAILED', 'FAILED']), { timeout: 10_000, interval: 25 });
      expect(await row(mail!)).toMatchObject({ errorCode: 'REJECTED', error: 'email-test refused the message (400): mailbox <recipient> does not exist' });
      expect(await row(text!)).toMatchObject({ errorCode: 'REJECTED', error: 'sms-test refused the message (400): <recipient> (<recipient>) is not reachable' });
      for (const [id, address] of [
        [mail!, emailAddress],
        [text!, phoneRequest.address],
      ] as const) {
        const failed = (await outbox(id)).find((e) => e.type === 'notification.failed')!;
        expect(failed.envelope.payload).toMatchObject({ code: 'REJECTED', error: 'Every provider refused the message (REJECTED)' });
        expect(JSON.stringify(failed.envelope).toLowerCase()).not.toContain(address.replace(/^\+/, '').toLowerCase());
      }
    });
  });

  describe('the wake-up connection', () => {
    type Listening = { listener: { end(): Promise<void> } | null };
    const listeners = async () =>
      (
        await orm.em
          .fork()
          .getConnection()
          .execute<{ pid: number }[]>(`select pid from pg_stat_activity where application_name = ? and datname = current_database()`, [LISTEN_APPLICATION_NAME])
      ).map((r) => r.pid);
    const noneLeft = async () => {
      await vi.waitFor(async () => expect(await listeners()).toEqual([]), { timeout: 10_000, interval: 25 });
      await sleep(700); // past the first reconnect wait: nothing comes back
      expect(await listeners()).toEqual([]);
    };

    it('is closed by stop(), however soon after start(), and is not left behind', async () => {
      const w = worker();
      for (let i = 0; i < 5; i++) {
        await w.start();
        expect(await listeners()).toHaveLength(1);
        await w.stop();
        await vi.waitFor(async () => expect(await listeners()).toEqual([]), { timeout: 10_000, interval: 25 });
      }
      // stop() while start() is still connecting.
      for (let i = 0; i < 5; i++) {
        const starting = w.start();
        await w.stop();
        await starting;
      }
      await noneLeft();
    });

    it('comes back after an error or an end nobody asked for, and a stop() meanwhile cancels its return', async () => {
      // A poll too slow to matter: only a notification wakes the worker.
      const email = recordingSender<OutgoingEmail>('email-test');
      const w = worker({ email, pollMs: 60_000 });
      const sendsOnNotify = async () => {
        const [id] = await queue(request());
        await vi.waitFor(async () => expect((await row(id!)).status).toBe('SENT'), { timeout: 5_000, interval: 25 });
      };
      await w.start();
      try {
        const [first] = await listeners();
        expect(first).toBeDefined();
        // Ended cleanly, without an error.
        await (w as unknown as Listening).listener!.end();
        await vi.waitFor(async () => {
          const now = await listeners();
          expect(now).toHaveLength(1);
          expect(now[0]).not.toBe(first);
        }, { timeout: 10_000, interval: 25 });
        const [second] = await listeners();
        await sendsOnNotify();

        // Killed by the server: an error, then an end.
        await orm.em.fork().getConnection().execute(`select pg_terminate_backend(?)`, [second]);
        await vi.waitFor(async () => {
          const now = await listeners();
          expect(now).toHaveLength(1);
          expect(now[0]).not.toBe(second);
        }, { timeout: 10_000, interval: 25 });
        await sendsOnNotify();

        // Lost, then stopped before it came back: it does not come back.
        const [third] = await listeners();
        await orm.em.fork().getConnection().execute(`select pg_terminate_backend(?)`, [third]);
        await vi.waitFor(() => expect((w as unknown as Listening).listener).toBeNull(), { timeout: 10_000, interval: 5 });
      } finally {
        await w.stop();
      }
      await noneLeft();
    });
  });
});
