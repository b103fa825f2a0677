import { randomUUID } from 'node:crypto';
import type { MikroORM } from '@mikro-orm/postgresql';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { DomainError } from '../../platform/errors.js';
import { createLogger } from '../../platform/log.js';
import { createSubgraphContext } from '../../platform/subgraph/context.js';
import { migratedSubgraphDatabase } from '../../test/support/database.js';
import { CampaignRunner, CampaignsService, type CampaignRunnerOptions } from './campaigns.js';
import { notificationMigrations } from './migrations/index.js';
import { Campaign, Delivery, notificationEntities, Recipient, TemplateRow } from './notification.entities.js';
import type { Category } from './preferences.rules.js';
import { databaseTemplateStore } from './templates.service.js';
import { defaultTemplateStore } from './templates/defaults.js';
import type { TemplateStore } from './templates/template.js';

/**
 * The campaign runner on a real PostgreSQL: recipients, preferences and the campaign's template
 * are rows written here; runners are started and stopped as replicas would be.
 */
const logger = createLogger('silent');
const KEY = 'marketing.spring';
let db: Awaited<ReturnType<typeof migratedSubgraphDatabase>>;
let orm: MikroORM;

beforeAll(async () => {
  db = await migratedSubgraphDatabase({ name: 'notification', entities: notificationEntities, migrations: notificationMigrations }, logger);
  orm = db.orm;
});

afterAll(async () => {
  await db?.close();
});

beforeEach(async () => {
  await orm.em
    .fork()
    .getConnection()
    .execute(`truncate notification.recipient, notification.preference, notification.template, notification.delivery, notification.campaign, notification.outbox`);
  await orm.em.fork().insert(TemplateRow, {
    id: randomUUID(),
    key: KEY,
    channel: 'EMAIL',
    locale: 'en',
    version: 1,
    subject: 'Spring',
    body: 'Hello {displayName}, spring is here: {appLink}',
    html: null,
    source: 'INLINE',
    sourceRef: null,
    createdBy: null,
    createdAt: new Date(),
  });
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const templates = { store: databaseTemplateStore, defaults: defaultTemplateStore() };

/** `count` recipients with an email; every third has opted in to MARKETING email. Returns the opted-in ids. */
async function audience(count: number): Promise<Set<string>> {
  const now = new Date();
  const people = Array.from({ length: count }, (_, i) => ({
    userId: randomUUID(),
    email: `reader${i}@example.test`,
    phone: null,
    displayName: `Reader ${i}`,
    locale: 'en',
    tier: 'FREE',
    membershipVersion: 1,
    registeredAt: now,
    deletedAt: null,
  }));
  const optedIn = people.filter((_, i) => i % 3 === 0).map((p) => p.userId);
  // Plain SQL with the columns a campaign reads: the directory's other columns keep their defaults.
  const connection = orm.em.fork().getConnection();
  await connection.execute(
    `insert into notification.recipient (user_id, email, phone, display_name, locale, tier, membership_version, registered_at, deleted_at) values ${people.map(() => '(?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`,
    people.flatMap((p) => [p.userId, p.email, p.phone, p.displayName, p.locale, p.tier, p.membershipVersion, p.registeredAt, p.deletedAt]),
  );
  await connection.execute(
    `insert into notification.preference (user_id, category, channel, enabled, updated_at) values ${optedIn.map(() => `(?, 'MARKETING', 'EMAIL', true, ?)`).join(', ')}`,
    optedIn.flatMap((userId) => [userId, now]),
  );
  return new Set(optedIn);
}

const admin = () =>
  createSubgraphContext({
    serviceName: 'notification',
    em: orm.em.fork(),
    log: logger,
    caller: { userId: randomUUID(), roles: ['USER', 'ADMIN'] },
    correlationId: 'test',
    onEventsCommitted: () => {},
  });

async function send(category: Category = 'MARKETING'): Promise<string> {
  const { campaign } = await new CampaignsService(templates, () => {}).send(admin(), { name: 'Spring', templateKey: KEY, category, audience: 'ALL_USERS' });
  return campaign.id;
}

function runner(options: Partial<CampaignRunnerOptions> = {}) {
  return new CampaignRunner({
    orm,
    templates,
    links: { app: () => 'https://app.storyloom.test/' },
    batchSize: 100,
    pollMs: 20,
    leaseMs: 30_000,
    logger,
    onEventsCommitted: () => {},
    onDeliveriesQueued: () => {},
    ...options,
  });
}

async function running<T>(runners: CampaignRunner[], body: () => Promise<T>): Promise<T> {
  try {
    for (const r of runners) r.start();
    return await body();
  } finally {
    for (const r of runners) await r.stop();
  }
}

const campaign = (id: string) => orm.em.fork().findOneOrFail(Campaign, { id });
const completed = (id: string, timeout = 20_000) =>
  vi.waitFor(
    async () => {
      const c = await campaign(id);
      expect(c.status).toBe('COMPLETED');
      return c;
    },
    { timeout, interval: 20 },
  );

/** Each delivery of the campaign, per user: exactly one per opted-in user, none for the others. */
async function expectOneDeliveryPerOptedIn(id: string, optedIn: Set<string>) {
  const deliveries = await orm.em.fork().find(Delivery, { campaignId: id });
  const perUser = new Map<string, number>();
  for (const d of deliveries) perUser.set(d.userId!, (perUser.get(d.userId!) ?? 0) + 1);
  expect(new Set(perUser.keys())).toEqual(optedIn);
  expect([...perUser.values()].every((n) => n === 1)).toBe(true);
  expect(deliveries.every((d) => d.channel === 'EMAIL' && d.category === 'MARKETING' && d.status === 'QUEUED')).toBe(true);
  return deliveries.length;
}

/** A template store that waits before answering: batches that take a while. */
const slowStore = (ms: number) => ({
  store: (em: Parameters<typeof databaseTemplateStore>[0]): TemplateStore => {
    const inner = databaseTemplateStore(em);
    return { find: async (...args) => (await sleep(ms), inner.find(...args)) };
  },
  defaults: templates.defaults,
});

describe('campaigns', () => {
  it('sends ~250 users in batches of 100: progress after each batch, one delivery per opted-in user', async () => {
    const optedIn = await audience(250);
    const id = await send();
    expect(await campaign(id)).toMatchObject({ status: 'QUEUED', audienceSize: 250, processedUsers: 0 });
    const batches: { processed: number; recipients: number; done: boolean }[] = [];
    const recording = pino({ level: 'info' }, { write: (line: string) => void (JSON.parse(line).msg === 'campaign batch' && batches.push(JSON.parse(line))) });
    const r = runner({ logger: recording });
    const done = await running([r], () => completed(id));
    expect(done).toMatchObject({ audienceSize: 250, processedUsers: 250, recipients: optedIn.size, leaseUntil: null, error: null });
    expect(done.startedAt).not.toBeNull();
    expect(done.completedAt).not.toBeNull();
    expect(batches.map((b) => [b.processed, b.done])).toEqual([
      [100, false],
      [200, false],
      [250, true],
    ]);
    expect(batches.at(-1)!.recipients).toBe(optedIn.size);
    expect(await expectOneDeliveryPerOptedIn(id, optedIn)).toBe(optedIn.size);
    const requested = await orm.em
      .fork()
      .getConnection()
      .execute<{ n: string }[]>(`select count(*) as n from notification.outbox where type = 'notification.requested'`);
    expect(Number(requested[0]!.n)).toBe(optedIn.size);
  });

  it('two runners on one campaign: each delivery made once, the campaign completed once', async () => {
    const optedIn = await audience(250);
    const id = await send();
    const queued: number[] = [];
    const a = runner({ batchSize: 50, templates: slowStore(5), onDeliveriesQueued: () => queued.push(1) });
    const b = runner({ batchSize: 50, templates: slowStore(5), onDeliveriesQueued: () => queued.push(1) });
    const done = await running([a, b], async () => {
      a.wake();
      b.wake();
      return completed(id);
    });
    expect(done).toMatchObject({ processedUsers: 250, recipients: optedIn.size });
    expect(await expectOneDeliveryPerOptedIn(id, optedIn)).toBe(optedIn.size);
    // Batches of 50 over 250 users: 5 that queue something and a last empty one, never one more.
    expect(queued).toHaveLength(5);
  });

  it('a runner whose lease ran out and was claimed by another lets go without touching the campaign', async () => {
    await audience(30);
    const id = await send();
    type Internals = { claim(): Promise<{ id: string; lease: Date } | null>; batch(id: string, lease: Date, log: unknown): Promise<unknown> };
    const a = runner({ batchSize: 10 }) as unknown as Internals;
    const b = runner({ batchSize: 10 }) as unknown as Internals;
    const first = await a.claim();
    expect(first?.id).toBe(id);
    // A stalls past its lease; B claims the campaign.
    await orm.em.fork().nativeUpdate(Campaign, { id }, { leaseUntil: new Date(Date.now() - 1000) });
    const second = await b.claim();
    expect(second?.id).toBe(id);
    expect(second!.lease.getTime()).not.toBe(first!.lease.getTime());
    expect(await a.batch(id, first!.lease, logger)).toEqual({ lost: true });
    expect(await campaign(id)).toMatchObject({ processedUsers: 0, cursor: null, leaseUntil: second!.lease });
    expect(await b.batch(id, second!.lease, logger)).toMatchObject({ done: false });
    expect(await campaign(id)).toMatchObject({ processedUsers: 10 });
    // And the holder's own renewed lease keeps working; A's old token still does not.
    expect(await a.batch(id, first!.lease, logger)).toEqual({ lost: true });
  });

  it('a runner stopped mid-campaign lets go; one started later resumes from the cursor', async () => {
    const optedIn = await audience(250);
    const id = await send();
    const a = runner({ templates: slowStore(100) });
    a.start();
    try {
      await vi.waitFor(async () => expect((await campaign(id)).processedUsers).toBeGreaterThanOrEqual(100), { timeout: 20_000, interval: 10 });
    } finally {
      await a.stop();
    }
    const stopped = await campaign(id);
    expect(stopped.status).toBe('RUNNING');
    expect(stopped.processedUsers).toBeLessThan(250);
    expect(stopped.cursor).not.toBeNull();
    expect(stopped.leaseUntil).toBeNull(); // released: the next runner need not wait for it
    const before = await orm.em.fork().count(Delivery, { campaignId: id });
    expect(before).toBeGreaterThan(0);
    expect(before).toBeLessThan(optedIn.size);
    await sleep(100);
    expect((await campaign(id)).processedUsers).toBe(stopped.processedUsers); // nobody runs it meanwhile
    const done = await running([runner()], () => completed(id));
    expect(done).toMatchObject({ processedUsers: 250, recipients: optedIn.size });
    expect(await expectOneDeliveryPerOptedIn(id, optedIn)).toBe(optedIn.size);
  });

  it('a campaign whose runner died is resumed by another once the lease runs out', async () => {
    const optedIn = await audience(150);
    const id = await send();
    // What a runner that crashed after its first batch leaves: RUNNING, a cursor, a lease in the future.
    const first = await orm.em.fork().find(Recipient, {}, { orderBy: { userId: 'asc' }, limit: 100 });
    const leaseUntil = new Date(Date.now() + 500);
    await orm.em.fork().nativeUpdate(Campaign, { id }, { status: 'RUNNING', startedAt: new Date(), cursor: first.at(-1)!.userId, processedUsers: 100, leaseUntil });
    const done = await running([runner()], async () => {
      await sleep(200);
      expect((await campaign(id)).processedUsers).toBe(100);
      return completed(id);
    });
    expect(done.completedAt!.getTime()).toBeGreaterThanOrEqual(leaseUntil.getTime());
    expect(done.processedUsers).toBe(150);
    const deliveries = await orm.em.fork().find(Delivery, { campaignId: id });
    const rest = new Set([...optedIn].filter((u) => !first.some((f) => f.userId === u)));
    expect(new Set(deliveries.map((d) => d.userId))).toEqual(rest);
  });

  it('a batch that always fails: the error is recorded, and after 5 in a row the campaign is FAILED', async () => {
    await audience(20);
    const id = await send();
    let calls = 0;
    const broken = {
      store: (): TemplateStore => ({
        find: async () => {
          calls++;
          throw new Error('template store unavailable');
        },
      }),
      defaults: templates.defaults,
    };
    const r = runner({ templates: broken, leaseMs: 60, pollMs: 10 });
    const failed = await running([r], async () => {
      await vi.waitFor(async () => expect(await campaign(id)).toMatchObject({ status: 'RUNNING', error: expect.stringContaining('template store unavailable') }), {
        timeout: 10_000,
        interval: 5,
      });
      return vi.waitFor(
        async () => {
          const c = await campaign(id);
          expect(c.status).toBe('FAILED');
          return c;
        },
        { timeout: 20_000, interval: 20 },
      );
    });
    expect(failed.error).toContain('template store unavailable');
    expect(failed.error).toContain('5 times');
    expect(failed).toMatchObject({ leaseUntil: null, processedUsers: 0, completedAt: null });
    expect(calls).toBe(5);
    // FAILED is final: a runner does not pick it up again.
    await running([runner({ templates: broken, leaseMs: 60, pollMs: 10 })], () => sleep(200));
    expect(calls).toBe(5);
    expect((await campaign(id)).status).toBe('FAILED');
  });

  it('a batch that fails and then succeeds clears the error and goes on', async () => {
    const optedIn = await audience(20);
    const id = await send();
    let calls = 0;
    const flaky = {
      store: (em: Parameters<typeof databaseTemplateStore>[0]): TemplateStore => ({
        find: async (...args) => {
          if (++calls <= 2) throw new Error('flaky');
          return databaseTemplateStore(em).find(...args);
        },
      }),
      defaults: templates.defaults,
    };
    const done = await running([runner({ templates: flaky, leaseMs: 60, pollMs: 10 })], () => completed(id));
    expect(done).toMatchObject({ error: null, processedUsers: 20, recipients: optedIn.size });
  });

  it('refuses a campaign in a category people cannot opt out of (ACCOUNT, BILLING)', async () => {
    await audience(5);
    for (const category of ['ACCOUNT', 'BILLING'] as const) {
      const refused = await send(category).catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(DomainError);
      expect(refused).toMatchObject({ kind: 'user', code: 'INVALID_INPUT', field: 'category' });
    }
    expect(await orm.em.fork().count(Campaign, {})).toBe(0);
    await expect(send('STORY')).resolves.toEqual(expect.any(String));
  });
});
