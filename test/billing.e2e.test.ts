import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createEnvelope, type EventEnvelope } from '../platform/events/envelope.js';
import { signCaller, type Caller } from '../platform/internal-auth.js';
import { captureEvents } from './support/capture.js';
import { clientOperation } from './support/clients.js';
import { runNpm } from './support/npm.js';
import { startTestStack, type TestStack } from './support/stack.js';

/** ../shared/clients/billing.graphql and the membership of Me, through the gateway, on real PostgreSQL and JetStream. */
const op = {
  register: clientOperation('Register'),
  me: clientOperation('Me'),
  delete: clientOperation('DeleteAccount'),
  plans: clientOperation('Plans'),
  changePlan: clientOperation('ChangePlan'),
  invoices: clientOperation('MyInvoices'),
};

let stack: TestStack;
let events: Awaited<ReturnType<typeof captureEvents>>;

beforeAll(async () => {
  stack = await startTestStack();
  events = await captureEvents(stack.transport, ['user.registered', 'subscription.>', 'usage.>']);
});

afterAll(async () => {
  await events?.stop();
  await stack?.close();
});

const thisMonth = () => {
  const now = new Date();
  return { start: new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)), end: new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1)) };
};

/** A new account, once billing has given it its FREE membership (user.registered, handled by billing's consumer). */
async function member(email: string, withinMs = 5000) {
  const res = await stack.gql(op.register, { input: { email, password: 'correct horse battery', displayName: 'Member' } });
  expect(res.data.register.userErrors).toEqual([]);
  const { session, user } = res.data.register;
  const token: string = session.accessToken;
  const me = await vi.waitFor(
    async () => {
      const { data } = await stack.gql(op.me, {}, { token });
      if (!data?.me?.membership) throw new Error('no membership yet');
      return data.me;
    },
    { timeout: withinMs, interval: 20 },
  );
  return { id: user.id as string, token, me };
}

interface Usage {
  storiesCreated: number;
  voiceClones: number;
  collaboratorsInvited: number;
  /** Selected by WITH_VIDEOS only. */
  videosGenerated?: number;
}

/**
 * The client operations (../shared/clients, not billing's to change) do not select the video
 * fields yet; these do, through the same gateway.
 */
const WITH_VIDEOS = {
  plans: 'query PlanVideos { plans { tier videosPerMonth } }',
  usage: 'query MyUsage { me { membership { usage { storiesCreated voiceClones collaboratorsInvited videosGenerated } } } }',
};

/** The user's usage of this month, once `ready` says the events awaited are counted. */
const usageOnce = (token: string, ready: (usage: Usage) => boolean, operation = op.me) =>
  vi.waitFor(
    async () => {
      const { data } = await stack.gql(operation, {}, { token });
      const counted: Usage = data.me.membership.usage;
      if (!ready(counted)) throw new Error(`not counted yet: ${JSON.stringify(counted)}`);
      return counted;
    },
    { timeout: 10_000, interval: 50 },
  );

const changePlan = (token: string | undefined, tier: string, headers?: Record<string, string>) =>
  stack.gql(op.changePlan, { tier }, { ...(token ? { token } : {}), ...(headers ? { headers } : {}) });

/** Publishes an event as its (future) publisher would, straight onto the stack's stream. */
const publish = (type: string, userId: string | null, payload: unknown, at?: Date) =>
  stack.transport.publish(createEnvelope({ type, userId, payload }, { serviceName: type.split('.')[0]!, correlationId: randomUUID() }, at));

/** Publishes an envelope past JetStream's de-duplication (no message id), as a publisher bug would. */
async function publishUndeduplicated(envelope: EventEnvelope): Promise<void> {
  const nc = await connect({ servers: stack.config.NATS_URL });
  try {
    await jetstream(nc).publish(`${stack.subjectPrefix}${envelope.type}`, JSON.stringify(envelope));
  } finally {
    await nc.close();
  }
}

/** A video.generation.* envelope as the video subgraph publishes it (the envelope's userId is the job's owner). */
const videoEvent = (outcome: 'completed' | 'failed', userId: string) => {
  const job = { jobId: randomUUID(), storyId: randomUUID() };
  const payload =
    outcome === 'completed'
      ? { ...job, provider: 'local', contentType: 'video/mp4', sizeBytes: 1024, attempts: [{ provider: 'local', status: 'COMPLETED', error: null }] }
      : { ...job, error: 'every provider failed', attempts: [{ provider: 'local', status: 'FAILED', error: 'boom' }] };
  return createEnvelope({ type: `video.generation.${outcome}`, userId, payload }, { serviceName: 'video', correlationId: randomUUID() });
};

/** usage.limit.reached of a user as billing's outbox holds them, oldest first: [metric, tier, limit, count]. */
const limitAnnouncements = async (userId: string) =>
  (await query<{ payload: { metric: string; limit: number; count: number; tier: string } }>(
    'select "envelope" -> \'payload\' as "payload" from "billing"."outbox" where "type" = $1 and "envelope" ->> \'userId\' = $2 order by "position"',
    ['usage.limit.reached', userId],
  )).map(({ payload }) => [payload.metric, payload.tier, payload.limit, payload.count]);

async function query<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: stack.databaseUrl });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

describe('plans', () => {
  it('lists the four plans, cheapest first, null meaning unlimited', async () => {
    const res = await stack.gql(op.plans);
    expect(res.errors).toBeUndefined();
    expect(res.data.plans).toEqual([
      { tier: 'FREE', name: 'Free', priceCents: 0, currency: 'USD', storiesPerMonth: 3, collaboratorsPerStory: 1 },
      { tier: 'SILVER', name: 'Silver', priceCents: 999, currency: 'USD', storiesPerMonth: 10, collaboratorsPerStory: 5 },
      { tier: 'GOLD', name: 'Gold', priceCents: 1999, currency: 'USD', storiesPerMonth: 30, collaboratorsPerStory: 10 },
      { tier: 'PLATINUM', name: 'Platinum', priceCents: 3999, currency: 'USD', storiesPerMonth: null, collaboratorsPerStory: null },
    ]);
  });

  it('limits videos per month by tier', async () => {
    const res = await stack.gql(WITH_VIDEOS.plans);
    expect(res.errors).toBeUndefined();
    expect(res.data.plans).toEqual([
      { tier: 'FREE', videosPerMonth: 1 },
      { tier: 'SILVER', videosPerMonth: 5 },
      { tier: 'GOLD', videosPerMonth: 20 },
      { tier: 'PLATINUM', videosPerMonth: null },
    ]);
  });
});

describe('membership', () => {
  it('gives a new account the FREE plan within a second (subscription.created, caused by user.registered)', async () => {
    const { id, me } = await member('new@example.com', 1000);
    expect(me.membership).toEqual({
      status: 'ACTIVE',
      currentPeriodEnd: thisMonth().end.toISOString(),
      plan: { tier: 'FREE', name: 'Free', priceCents: 0, currency: 'USD', storiesPerMonth: 3, collaboratorsPerStory: 1 },
      usage: { storiesCreated: 0, voiceClones: 0, collaboratorsInvited: 0 },
    });
    const registered = await events.waitFor((e) => e.type === 'user.registered' && e.userId === id);
    const created = await events.waitFor((e) => e.type === 'subscription.created' && e.userId === id);
    expect(created).toMatchObject({ serviceName: 'billing', causationId: registered.id, correlationId: registered.correlationId });
    expect(created.payload).toEqual({
      userId: id,
      membershipVersion: 1,
      tier: 'FREE',
      status: 'ACTIVE',
      currentPeriodEnd: thisMonth().end.toISOString(),
      entitlements: { tier: 'FREE', storiesPerMonth: 3, collaboratorsPerStory: 1, videosPerMonth: 1 },
    });
  });

  it('upgrades with an OPEN invoice (subscription.upgraded), refuses the same plan, downgrades without one', async () => {
    const { id, token } = await member('changer@example.com');
    const correlationId = `test-${randomUUID()}`;
    const up = await changePlan(token, 'SILVER', { 'x-correlation-id': correlationId });
    expect(up.errors).toBeUndefined();
    const { membership, invoice, userErrors } = up.data.changePlan;
    expect(userErrors).toEqual([]);
    expect(membership).toEqual({ status: 'ACTIVE', plan: { tier: 'SILVER' }, currentPeriodEnd: thisMonth().end.toISOString() });
    expect(invoice).toEqual({ id: expect.any(String), amountCents: 999, currency: 'USD', status: 'OPEN', issuedAt: expect.any(String) });
    const upgraded = await events.waitFor((e) => e.type === 'subscription.upgraded' && e.userId === id);
    expect(upgraded.correlationId).toBe(correlationId);
    expect(upgraded.payload).toEqual({
      userId: id,
      membershipVersion: 2,
      fromTier: 'FREE',
      toTier: 'SILVER',
      invoiceId: invoice.id,
      amountCents: 999,
      currency: 'USD',
      entitlements: { tier: 'SILVER', storiesPerMonth: 10, collaboratorsPerStory: 5, videosPerMonth: 5 },
    });
    expect((await stack.gql(op.me, {}, { token })).data.me.membership.plan.tier).toBe('SILVER');

    const same = await changePlan(token, 'SILVER');
    expect(same.data.changePlan).toEqual({ membership: null, invoice: null, userErrors: [{ code: 'SAME_PLAN', field: 'tier', message: expect.any(String) }] });

    const down = await changePlan(token, 'FREE');
    expect(down.data.changePlan).toMatchObject({ membership: { status: 'ACTIVE', plan: { tier: 'FREE' } }, invoice: null, userErrors: [] });
    const downgraded = await events.waitFor((e) => e.type === 'subscription.downgraded' && e.userId === id);
    expect(downgraded.payload).toEqual({ userId: id, membershipVersion: 3, fromTier: 'SILVER', toTier: 'FREE', entitlements: { tier: 'FREE', storiesPerMonth: 3, collaboratorsPerStory: 1, videosPerMonth: 1 } });
    // The downgrade issued nothing: the upgrade's invoice is the only one.
    expect((await stack.gql(op.invoices, {}, { token })).data.me.invoices.totalCount).toBe(1);
  });

  it('keeps a user deleted before billing knew them cancelled, in the month the account ended', async () => {
    const id = randomUUID();
    const nextMonth = new Date(thisMonth().end.getTime() + 86_400_000);
    const deleted = createEnvelope({ type: 'user.deleted', userId: id, payload: { userId: id } }, { serviceName: 'identity' }, nextMonth);
    // Late, as from a replayed dead letter: must not bring the membership back.
    const registered = createEnvelope(
      { type: 'user.registered', userId: id, payload: { userId: id, email: 'late@example.com', displayName: 'Late', locale: 'en', provider: 'local' } },
      { serviceName: 'identity' },
    );
    await stack.transport.publish(deleted);
    await stack.transport.publish(registered);
    await vi.waitFor(
      async () => expect(await query('select 1 from "billing"."inbox" where "consumer" = $1 and "event_id" = any($2)', ['billing', [deleted.id, registered.id]])).toHaveLength(2),
      { timeout: 5000, interval: 50 },
    );
    const [row] = await query<{ status: string; current_period_start: Date }>('select "status", "current_period_start" from "billing"."membership" where "user_id" = $1', [id]);
    expect(row).toEqual({ status: 'CANCELLED', current_period_start: new Date(Date.UTC(nextMonth.getUTCFullYear(), nextMonth.getUTCMonth(), 1)) });
    expect(events.received.filter((e) => e.userId === id && e.type.startsWith('subscription.'))).toEqual([]);
  });

  it('needs a signed-in user to change plans', async () => {
    const res = await changePlan(undefined, 'GOLD');
    expect(res.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('cancels the membership when the account is deleted (subscription.cancelled)', async () => {
    const { id, token } = await member('leaver@example.com');
    await changePlan(token, 'GOLD');
    expect((await stack.gql(op.delete, {}, { token })).data.deleteAccount.userErrors).toEqual([]);
    const cancelled = await events.waitFor((e) => e.type === 'subscription.cancelled' && e.userId === id);
    // Created (1), upgraded to GOLD (2), cancelled (3).
    expect(cancelled.payload).toEqual({ userId: id, membershipVersion: 3, tier: 'GOLD', entitlements: { tier: 'GOLD', storiesPerMonth: 0, collaboratorsPerStory: 0, videosPerMonth: 0 } });
    const [row] = await query<{ status: string; cancelled_at: Date | null }>('select "status", "cancelled_at" from "billing"."membership" where "user_id" = $1', [id]);
    expect(row).toEqual({ status: 'CANCELLED', cancelled_at: expect.any(Date) });
    // The access token outlives the account for a while: it can change nothing any more.
    const late = await changePlan(token, 'PLATINUM');
    expect(late.data.changePlan.userErrors).toEqual([{ code: 'MEMBERSHIP_CANCELLED', field: null, message: expect.any(String) }]);
  });
});

describe('invoices', () => {
  it('pages newest first with keyset cursors', async () => {
    const { token } = await member('payer@example.com');
    await changePlan(token, 'SILVER');
    await changePlan(token, 'GOLD');
    const all = (await stack.gql(op.invoices, {}, { token })).data.me.invoices;
    expect(all.totalCount).toBe(2);
    expect(all.edges.map((e: { node: { plan: { tier: string } } }) => e.node.plan.tier)).toEqual(['GOLD', 'SILVER']);

    const first = (await stack.gql(op.invoices, { first: 1 }, { token })).data.me.invoices;
    expect(first).toMatchObject({ totalCount: 2, pageInfo: { hasNextPage: true }, edges: [{ node: { amountCents: 1999, status: 'OPEN', plan: { tier: 'GOLD' } } }] });
    expect(first.pageInfo.endCursor).toBe(first.edges[0].cursor);
    const second = (await stack.gql(op.invoices, { first: 1, after: first.pageInfo.endCursor }, { token })).data.me.invoices;
    expect(second).toMatchObject({ totalCount: 2, pageInfo: { hasNextPage: false }, edges: [{ node: { amountCents: 999, plan: { tier: 'SILVER' } } }] });
    const past = (await stack.gql(op.invoices, { first: 1, after: second.pageInfo.endCursor }, { token })).data.me.invoices;
    expect(past).toEqual({ totalCount: 2, pageInfo: { hasNextPage: false, endCursor: null }, edges: [] });
  });

  it('refuses a cursor that is not from the list, and pages larger than 100', async () => {
    const { token } = await member('cursor@example.com');
    const forged = Buffer.from(JSON.stringify(['yesterday', 'not-a-uuid'])).toString('base64url');
    for (const variables of [{ after: 'garbage' }, { after: forged }, { first: 101 }]) {
      const res = await stack.gql(op.invoices, variables, { token });
      expect(res.errors?.[0]?.extensions?.code, JSON.stringify(variables)).toBe('BAD_USER_INPUT');
    }
  });
});

describe('usage', () => {
  it('counts stories, voices and invitations per calendar month, and tells when the FREE limit is reached', async () => {
    const { id, token } = await member('writer@example.com');
    const lastMonth = new Date(thisMonth().start.getTime() - 86_400_000);
    // Counted in its own month, not this one.
    await publish('story.created', id, { storyId: randomUUID(), title: 'Old' }, lastMonth);
    // Nobody to count it for: skipped, and the consumer carries on.
    await publish('story.created', null, { storyId: randomUUID(), title: 'Nobody’s' });
    for (const title of ['One', 'Two', 'Three']) await publish('story.created', id, { storyId: randomUUID(), title });
    await publish('voice.cloned', id, { voiceId: randomUUID() });
    await publish('collaboration.invitation.sent', id, { invitationId: randomUUID(), storyId: randomUUID(), inviteeEmail: 'friend@example.com' });

    const usage = await usageOnce(token, (counted) => counted.collaboratorsInvited >= 1);
    expect(usage).toEqual({ storiesCreated: 3, voiceClones: 1, collaboratorsInvited: 1 });
    const rows = await query<{ period_start: Date; stories_created: number }>(
      'select "period_start", "stories_created" from "billing"."usage" where "user_id" = $1 order by "period_start"',
      [id],
    );
    expect(rows.map((r) => [r.period_start.toISOString(), r.stories_created])).toEqual([
      [new Date(Date.UTC(lastMonth.getUTCFullYear(), lastMonth.getUTCMonth(), 1)).toISOString(), 1],
      [thisMonth().start.toISOString(), 3],
    ]);

    const reached = await events.waitFor((e) => e.type === 'usage.limit.reached' && e.userId === id);
    expect(reached.payload).toEqual({ userId: id, metric: 'storiesCreated', limit: 3, count: 3, periodStart: thisMonth().start.toISOString(), tier: 'FREE' });
    // Exactly once: the month's first story (last month's one included) did not reach it, nor will a fourth.
    await publish('story.created', id, { storyId: randomUUID(), title: 'Four' });
    await vi.waitFor(
      async () => {
        const { data } = await stack.gql(op.me, {}, { token });
        if (data.me.membership.usage.storiesCreated < 4) throw new Error('fourth story not counted yet');
      },
      { timeout: 5000, interval: 50 },
    );
    // The outbox row of an announcement commits with the count, so it is there if the count is.
    const announced = await query('select 1 from "billing"."outbox" where "type" = $1 and "envelope" ->> \'userId\' = $2', ['usage.limit.reached', id]);
    expect(announced).toHaveLength(1);
  });

  it('announces a higher limit after an upgrade, and a passed one at the next story after a downgrade', async () => {
    const announcements = async (userId: string) => (await limitAnnouncements(userId)).map(([, ...rest]) => rest);
    const stories = async (userId: string, token: string, n: number, total: number) => {
      for (let i = 0; i < n; i++) await publish('story.created', userId, { storyId: randomUUID(), title: `Story ${i}` });
      await usageOnce(token, (usage) => usage.storiesCreated >= total);
    };

    const climber = await member('climber@example.com');
    await stories(climber.id, climber.token, 3, 3);
    await changePlan(climber.token, 'SILVER');
    await stories(climber.id, climber.token, 8, 11);
    expect(await announcements(climber.id)).toEqual([['FREE', 3, 3], ['SILVER', 10, 10]]);

    const faller = await member('faller@example.com');
    await changePlan(faller.token, 'GOLD');
    await stories(faller.id, faller.token, 12, 12);
    expect(await announcements(faller.id)).toEqual([]);
    await changePlan(faller.token, 'SILVER');
    await stories(faller.id, faller.token, 2, 14);
    expect(await announcements(faller.id)).toEqual([['SILVER', 10, 13]]);
  });
});

describe('video usage', () => {
  it('counts a completed video once however often it is delivered, and a failed one not at all', async () => {
    const { id, token } = await member('director@example.com');
    const completed = videoEvent('completed', id);
    // Twice, and neither copy de-duplicated by JetStream: only billing's inbox can count it once.
    await publishUndeduplicated(completed);
    await publishUndeduplicated(completed);
    await stack.transport.publish(videoEvent('failed', id));
    // Consumers take events in stream order: once this is counted, everything before it was handled.
    await publish('voice.cloned', id, { voiceId: randomUUID() });

    const usage = await usageOnce(token, (counted) => counted.voiceClones >= 1, WITH_VIDEOS.usage);
    expect(usage).toEqual({ storiesCreated: 0, voiceClones: 1, collaboratorsInvited: 0, videosGenerated: 1 });
    const [row] = await query<{ videos_generated: number }>('select "videos_generated" from "billing"."usage" where "user_id" = $1 and "period_start" = $2', [id, thisMonth().start]);
    expect(row).toEqual({ videos_generated: 1 });
  });

  it('announces FREE’s one video a month once, apart from the stories limit', async () => {
    const { id, token } = await member('auteur@example.com');
    // Stories first: with one announcement column for both metrics, the stories limit (3)
    // would pass for an announcement of the lower videos limit (1).
    for (const title of ['One', 'Two', 'Three']) await publish('story.created', id, { storyId: randomUUID(), title });
    await usageOnce(token, (counted) => counted.storiesCreated >= 3);
    expect(await limitAnnouncements(id)).toEqual([['storiesCreated', 'FREE', 3, 3]]);

    await stack.transport.publish(videoEvent('completed', id));
    const reached = await events.waitFor((e) => e.type === 'usage.limit.reached' && e.userId === id && (e.payload as { metric: string }).metric === 'videosGenerated');
    expect(reached.payload).toEqual({ userId: id, metric: 'videosGenerated', limit: 1, count: 1, periodStart: thisMonth().start.toISOString(), tier: 'FREE' });

    // A second video (the video subgraph's own check let it through, or it raced the first) is
    // counted but not announced again.
    await stack.transport.publish(videoEvent('completed', id));
    await usageOnce(token, (counted) => (counted.videosGenerated ?? 0) >= 2, WITH_VIDEOS.usage);
    // The announcement commits with the count, so the outbox is complete once the count is.
    expect(await limitAnnouncements(id)).toEqual([
      ['storiesCreated', 'FREE', 3, 3],
      ['videosGenerated', 'FREE', 1, 1],
    ]);
  });

  it('announces a video limit only against the plan in force', async () => {
    const { id, token } = await member('producer@example.com');
    await changePlan(token, 'SILVER');
    await stack.transport.publish(videoEvent('completed', id));
    await usageOnce(token, (counted) => (counted.videosGenerated ?? 0) >= 1, WITH_VIDEOS.usage);
    // SILVER allows five: one video reaches nothing.
    expect(await limitAnnouncements(id)).toEqual([]);
  });
});

describe('exactly-once usage', () => {
  it('counts a story published twice once, and one redelivered after a handler crash once', async () => {
    const { id, token } = await member('once@example.com');
    // The handler crashes on its first write to usage, once: a sequence is not rolled back.
    await query(`create sequence billing.crash_once`);
    await query(`create function billing.crash_once() returns trigger language plpgsql as $$
      begin if nextval('billing.crash_once') = 1 then raise exception 'handler crashed'; end if; return new; end $$`);
    await query(`create trigger crash_once before insert or update on billing.usage for each row execute function billing.crash_once()`);
    try {
      const story = createEnvelope({ type: 'story.created', userId: id, payload: { storyId: randomUUID(), title: 'Twice' } }, { serviceName: 'story' });
      await stack.transport.publish(story);
      // The same event again, past JetStream's de-duplication: a publisher bug.
      await publishUndeduplicated(story);
      await publish('voice.cloned', id, { voiceId: randomUUID() });

      // The crash costs a retry's backoff.
      const usage = await usageOnce(token, (counted) => counted.voiceClones >= 1);
      expect(usage).toEqual({ storiesCreated: 1, voiceClones: 1, collaboratorsInvited: 0 });
      // The crash happened (and was retried): the sequence moved past its first value.
      expect((await query<{ last_value: string }>(`select last_value from billing.crash_once`))[0]?.last_value).not.toBe('1');
    } finally {
      await query(`drop trigger crash_once on billing.usage`);
      await query(`drop function billing.crash_once()`);
      await query(`drop sequence billing.crash_once`);
    }
  });
});

describe('replay', () => {
  it('npm run replay -- billing-usage rebuilds the usage counters from the stream', async () => {
    const { id, token } = await member('replayed@example.com');
    for (const title of ['A', 'B']) await publish('story.created', id, { storyId: randomUUID(), title });
    await stack.transport.publish(videoEvent('completed', id));
    await publish('voice.cloned', id, { voiceId: randomUUID() });
    await usageOnce(token, (usage) => usage.voiceClones >= 1 && usage.storiesCreated >= 2);
    const snapshot = () => query('select * from "billing"."usage" order by "user_id", "period_start"');
    const before = await snapshot();
    // The videos limit this user reached (FREE: 1) is in the snapshot too: rebuilt, not lost.
    expect(before.find((row) => row.user_id === id)).toMatchObject({ videos_generated: 1, videos_limit_reached: 1 });
    await query('update "billing"."usage" set "stories_created" = 99, "videos_generated" = 99, "videos_limit_reached" = null');

    const { code, output } = await runNpm(['run', 'replay', '--', 'billing-usage'], stack.scriptEnv);
    expect(code, output).toBe(0);
    expect(await snapshot()).toEqual(before);
    expect(await usageOnce(token, () => true, WITH_VIDEOS.usage)).toEqual({ storiesCreated: 2, voiceClones: 1, collaboratorsInvited: 0, videosGenerated: 1 });
  });
});

describe('User as a federated entity in billing', () => {
  /** What the gateway sends billing when a list of users (a story's collaborators, say) needs their plans. */
  const entities = async (caller: Caller, ids: string[], selection: string) => {
    const billing = stack.app.subgraphs.find((s) => s.name === 'billing')!;
    const operation = {
      query: `query ($r: [_Any!]!) { _entities(representations: $r) { ... on User { ${selection} } } }`,
      variables: { r: ids.map((id) => ({ __typename: 'User', id })) },
    };
    const signed = signCaller(stack.config.INTERNAL_SECRET, { audience: 'billing', caller, correlationId: randomUUID(), operation });
    const res = await fetch(`${billing.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...signed }, body: JSON.stringify(operation) });
    return (await res.json()) as { data: { _entities: ({ id: string; membership?: { plan: { tier: string } } | null } | null)[] } | null; errors?: any[] };
  };

  it('shows a membership to its user and admins only, and refuses others the invoices', async () => {
    const a = await member('ent-a@example.com');
    const b = await member('ent-b@example.com');
    const asA = await entities({ userId: a.id, roles: ['USER'] }, [a.id, b.id], 'id membership { plan { tier } }');
    expect(asA.errors).toBeUndefined();
    expect(asA.data!._entities).toEqual([{ id: a.id, membership: { plan: { tier: 'FREE' } } }, { id: b.id, membership: null }]);

    const forbidden = await entities({ userId: a.id, roles: ['USER'] }, [b.id], 'invoices { totalCount }');
    expect(forbidden.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');

    const asAdmin = await entities({ userId: randomUUID(), roles: ['USER', 'ADMIN'] }, [b.id], 'membership { plan { tier } } invoices { totalCount }');
    expect(asAdmin.errors).toBeUndefined();
    expect(asAdmin.data!._entities).toEqual([{ membership: { plan: { tier: 'FREE' } }, invoices: { totalCount: 0 } }]);
  });

  it('batches: many users cost one query per table, not one per user', async () => {
    const ids: string[] = [];
    for (const n of [1, 2, 3]) ids.push((await member(`billing-batch-${n}@example.com`)).id);
    const knex = stack.app.subgraphs.find((s) => s.name === 'billing')!.orm.em.getConnection().getKnex();
    const tables: string[] = [];
    const onQuery = (q: { sql: string }) => {
      // Only the tables this resolution reads (the relay and consumer may query meanwhile).
      const table = /from "billing"\."(membership|plan|usage)"/.exec(q.sql)?.[1];
      if (table) tables.push(table);
    };
    knex.on('query', onQuery);
    try {
      const res = await entities({ userId: randomUUID(), roles: ['USER', 'ADMIN'] }, ids, 'membership { plan { tier } usage { storiesCreated } }');
      expect(res.data!._entities.map((u) => u?.membership)).toEqual(ids.map(() => ({ plan: { tier: 'FREE' }, usage: { storiesCreated: 0 } })));
    } finally {
      knex.off('query', onQuery);
    }
    expect(tables.sort()).toEqual(['membership', 'plan', 'usage']);
  });
});

describe('the event catalog', () => {
  it('lists every event billing publishes, with exactly its payload fields', async () => {
    const catalog = JSON.parse(readFileSync(new URL('../schema/events/catalog.json', import.meta.url), 'utf8'));
    // The tests above published each type.
    const types = ['subscription.created', 'subscription.upgraded', 'subscription.downgraded', 'subscription.cancelled', 'usage.limit.reached'];
    for (const type of types) await events.waitFor((e) => e.type === type);
    for (const event of events.received.filter((e) => e.serviceName === 'billing')) {
      expect(catalog[event.type]?.publisher, event.type).toBe('billing');
      expect(Object.keys(event.payload).sort(), event.type).toEqual(Object.keys(catalog[event.type].payload).sort());
      expect(event.version).toBe(catalog[event.type].version);
    }
  });
});
