import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createEnvelope } from '../platform/events/envelope.js';
import { readLocalMailbox } from '../subgraphs/notification/providers/email-local.js';
import { startFakeOidcIssuer, type FakeOidcIssuer } from './fakes/oidc-issuer.js';
import { captureEvents } from './support/capture.js';
import { clientOperation } from './support/clients.js';
import { registerMember } from './support/people.js';
import { startTestStack, type TestStack } from './support/stack.js';

/**
 * ../shared/clients/admin.graphql's template and campaign mutations through the gateway, with
 * the local providers (the mailbox folder): versioned templates from the database and from
 * files, and campaigns sent in batches in the background to every opted-in user.
 */
const op = {
  signIn: clientOperation('SignInWithProvider'),
  upsertTemplate: clientOperation('CreateNotificationTemplate'),
  sendCampaign: clientOperation('SendCampaign'),
  setPreference: clientOperation('SetNotificationPreference'),
  deliveries: clientOperation('MyDeliveries'),
};
const campaignQuery = `query($id: ID!) { campaign(id: $id) { id status audienceSize processedUsers recipients sent } }`;

let stack: TestStack;
let google: FakeOidcIssuer;
let adminToken: string;
let folder: string;
let events: Awaited<ReturnType<typeof captureEvents>>;
let db: pg.Client;

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'storyloom-notify-'));
  await mkdir(join(folder, 'templates'));
  google = await startFakeOidcIssuer();
  stack = await startTestStack({
    env: {
      ADMIN_EMAILS: 'admin@example.com',
      GOOGLE_CLIENT_ID: 'google-client',
      GOOGLE_JWKS_URL: google.jwksUrl,
      GOOGLE_ISSUER: google.issuerUrl,
      NOTIFICATION_MAILBOX_DIR: join(folder, 'mailbox'),
      NOTIFICATION_TEMPLATE_DIR: join(folder, 'templates'),
      NOTIFICATION_CAMPAIGN_BATCH: '100',
      NOTIFICATION_CONCURRENCY: '8',
      NOTIFICATION_RATE_LIMIT_PER_HOUR: '10000',
      NOTIFICATION_POLL_MS: '100',
    },
  });
  const idToken = await google.signIdToken({ sub: 'g-admin', aud: 'google-client', email: 'admin@example.com', email_verified: true, name: 'Admin' });
  const signedIn = await stack.gql(op.signIn, { input: { provider: 'GOOGLE', idToken } });
  expect(signedIn.data.signInWithProvider.userErrors).toEqual([]);
  adminToken = signedIn.data.signInWithProvider.session.accessToken;
  events = await captureEvents(stack.transport, ['template.updated', 'notification.requested']);
  db = new pg.Client({ connectionString: stack.databaseUrl });
  await db.connect();
}, 60_000);

afterAll(async () => {
  await db?.end();
  await events?.stop();
  await stack?.close();
  await google?.stop();
  await rm(folder, { recursive: true, force: true });
});

const mailbox = () => readLocalMailbox(join(folder, 'mailbox', 'email'));

async function upsert(input: Record<string, unknown>, token = adminToken) {
  return stack.gql(op.upsertTemplate, { input }, { token });
}

describe('templates', () => {
  it('stores versions an admin writes, and the newest is what people get', async () => {
    const first = await upsert({ key: 'user.registered', channel: 'EMAIL', locale: 'en', subject: 'Hello {displayName}', body: 'Welcome, {displayName}: {appLink}', html: '<p>Welcome, {displayName}</p>' });
    expect(first.data.upsertNotificationTemplate).toEqual({ template: { key: 'user.registered', channel: 'EMAIL', locale: 'en', version: 1 }, userErrors: [] });
    const second = await upsert({ key: 'user.registered', channel: 'EMAIL', locale: 'en', subject: 'Welcome aboard, {displayName}', body: 'Start writing: {appLink}', html: '<p>Hi {displayName}</p>' });
    expect(second.data.upsertNotificationTemplate.template.version).toBe(2);
    await events.waitFor((e) => e.type === 'template.updated' && e.payload.key === 'user.registered' && e.payload.version === 2);

    const registered = await stack.gql(clientOperation('Register'), { input: { email: `zoe-${randomUUID().slice(0, 8)}@example.com`, password: 'correct horse battery', displayName: 'Zoe <script>' } });
    expect(registered.data.register.userErrors).toEqual([]);
    const zoe = { token: registered.data.register.session.accessToken as string };
    const mail = await vi.waitFor(
      async () => {
        const found = (await mailbox()).find((m) => m.headers.Subject.startsWith('Welcome aboard'));
        if (!found) throw new Error('no welcome yet');
        return found;
      },
      { timeout: 10_000, interval: 50 },
    );
    expect(mail.headers.Subject).toBe('Welcome aboard, Zoe <script>');
    expect(mail.html).toBe('<p>Hi Zoe &lt;script&gt;</p>');
    const mine = (await stack.gql(op.deliveries, { first: 10 }, { token: zoe.token })).data.me.deliveries;
    expect(mine.edges.map((e: any) => e.node)).toEqual([expect.objectContaining({ template: 'user.registered', locale: 'en', provider: 'local', channel: 'EMAIL', category: 'ACCOUNT' })]);
  });

  it('refuses a broken template, a file outside the templates folder, and anyone but an admin', async () => {
    const broken = await upsert({ key: 'user.registered', channel: 'EMAIL', locale: 'en', subject: 'Hi {displayName', body: 'x' });
    expect(broken.data.upsertNotificationTemplate).toEqual({ template: null, userErrors: [expect.objectContaining({ code: 'INVALID_TEMPLATE', field: 'subject' })] });
    const escaping = await upsert({ key: 'marketing.x', channel: 'EMAIL', locale: 'en', subject: 's', body: 'b', html: '<a href="{appLink}" onclick="{displayName}">x</a>' });
    expect(escaping.data.upsertNotificationTemplate.userErrors[0]).toMatchObject({ code: 'INVALID_TEMPLATE', field: 'html' });
    const outside = await upsert({ key: 'marketing.x', channel: 'SMS', locale: 'en', source: 'FILE', sourceRef: '../../etc/passwd' });
    expect(outside.data.upsertNotificationTemplate.userErrors[0]).toMatchObject({ code: 'INVALID_TEMPLATE', field: 'sourceRef' });
    const missing = await upsert({ key: 'marketing.x', channel: 'SMS', locale: 'en', source: 'FILE', sourceRef: 'nope.txt' });
    expect(missing.data.upsertNotificationTemplate.userErrors[0]).toMatchObject({ code: 'SOURCE_UNAVAILABLE', field: 'sourceRef' });
    const member = await registerMember(stack, 'Mo');
    const forbidden = await upsert({ key: 'user.registered', channel: 'SMS', locale: 'en', body: 'hi' }, member.token);
    expect(forbidden.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect((await db.query(`select count(*)::int as n from "notification"."template" where "key" = 'marketing.x'`)).rows[0].n).toBe(0);

    // A FILE source is read from the folder when stored, and again when a message is rendered.
    await writeFile(join(folder, 'templates', 'spring.sms.txt'), 'Spring is here, {displayName}: {appLink}');
    const file = await upsert({ key: 'marketing.file', channel: 'SMS', locale: 'en', source: 'FILE', sourceRef: 'spring.sms.txt' });
    expect(file.data.upsertNotificationTemplate).toEqual({ template: { key: 'marketing.file', channel: 'SMS', locale: 'en', version: 1 }, userErrors: [] });
  });
});

describe('campaigns', () => {
  it('sends to 1,000 users in batches: one delivery per opted-in user, none to the others', async () => {
    const key = `marketing.spring_${randomUUID().slice(0, 8)}`;
    expect((await upsert({ key, channel: 'EMAIL', locale: 'en', subject: 'Spring stories for {displayName}', body: 'New this spring: {appLink}. Change what you get: {preferencesLink}' })).data.upsertNotificationTemplate.userErrors).toEqual([]);

    // 1,000 accounts as identity announces them (registering each through the API would mostly time password hashing).
    const seeded = Array.from({ length: 1000 }, (_, i) => ({ userId: randomUUID(), email: `reader-${i}-${randomUUID().slice(0, 6)}@example.com`, displayName: `Reader ${i}`, locale: 'en', provider: 'local' }));
    for (const payload of seeded) await stack.transport.publish(createEnvelope({ type: 'user.registered', userId: payload.userId, payload }, { serviceName: 'identity' }));
    await vi.waitFor(
      async () => expect((await db.query(`select count(*)::int as n from "notification"."recipient" where "email" like 'reader-%'`)).rows[0].n).toBe(1000),
      { timeout: 60_000, interval: 200 },
    );
    // Every third opts in to MARKETING email; the preference API is the subject of notification.e2e, this is the campaign's.
    const optedIn = seeded.filter((_, i) => i % 3 === 0);
    await db.query(
      `insert into "notification"."preference" ("user_id", "category", "channel", "enabled", "updated_at") select unnest($1::uuid[]), 'MARKETING', 'EMAIL', true, now()`,
      [optedIn.map((u) => u.userId)],
    );
    // And two real members through the API: one opts in, one leaves the default (off).
    const [yes, no] = [await registerMember(stack, 'Yes'), await registerMember(stack, 'No')];
    expect((await stack.gql(op.setPreference, { input: { category: 'MARKETING', channel: 'EMAIL', enabled: true } }, { token: yes.token })).data.setNotificationPreference.userErrors).toEqual([]);
    // The audience is whoever notification knows when the campaign runs: wait until it knows them.
    await vi.waitFor(
      async () => expect((await db.query(`select count(*)::int as n from "notification"."recipient" where "user_id" = any($1::uuid[])`, [[yes.id, no.id]])).rows[0].n).toBe(2),
      { timeout: 30_000, interval: 100 },
    );

    const sent = await stack.gql(op.sendCampaign, { input: { name: 'Spring', templateKey: key, category: 'MARKETING', audience: 'ALL_USERS' } }, { token: adminToken });
    expect(sent.errors).toBeUndefined();
    expect(sent.data.sendCampaign.userErrors).toEqual([]);
    const campaign = sent.data.sendCampaign.campaign;
    expect(campaign).toMatchObject({ name: 'Spring', status: 'QUEUED' });

    const done = await vi.waitFor(
      async () => {
        const res = await stack.gql(campaignQuery, { id: campaign.id }, { token: adminToken });
        expect(res.data.campaign.status).toBe('COMPLETED');
        return res.data.campaign;
      },
      { timeout: 60_000, interval: 200 },
    );
    const { rows: users } = await db.query(`select count(*)::int as n from "notification"."recipient" where "deleted_at" is null`);
    expect(done.processedUsers).toBe(users[0].n);
    const { rows } = await db.query(`select "user_id", count(*)::int as n from "notification"."delivery" where "campaign_id" = $1 group by "user_id"`, [campaign.id]);
    const reached = new Map(rows.map((r) => [r.user_id as string, r.n as number]));
    const expected = new Set([...optedIn.map((u) => u.userId), yes.id]);
    expect(done.recipients).toBe(expected.size);
    expect(reached.size).toBe(expected.size);
    expect([...reached.values()].every((n) => n === 1)).toBe(true);
    expect([...expected].every((id) => reached.has(id))).toBe(true);
    expect(reached.has(no.id)).toBe(false);
    // Batches of 100 were logged as progress; every delivery is then sent by the worker.
    await vi.waitFor(async () => expect((await stack.gql(campaignQuery, { id: campaign.id }, { token: adminToken })).data.campaign.sent).toBe(expected.size), { timeout: 60_000, interval: 250 });
    const spring = (await mailbox()).filter((m) => m.headers.Subject.startsWith('Spring stories for'));
    expect(spring).toHaveLength(expected.size);
    expect(spring.find((m) => m.headers.To === seeded[3]!.email)?.text).toContain('/settings/notifications');
  }, 180_000);

  it('reaches only the tier asked for, and refuses a key without a template', async () => {
    const key = `marketing.gold_${randomUUID().slice(0, 8)}`;
    expect((await upsert({ key, channel: 'EMAIL', locale: 'en', subject: 'For Gold members', body: 'Thanks {displayName}' })).data.upsertNotificationTemplate.userErrors).toEqual([]);
    const gold = await registerMember(stack, 'Goldie');
    expect((await stack.gql(clientOperation('ChangePlan'), { tier: 'GOLD' }, { token: gold.token })).data.changePlan.userErrors).toEqual([]);
    await stack.gql(op.setPreference, { input: { category: 'MARKETING', channel: 'EMAIL', enabled: true } }, { token: gold.token });
    await vi.waitFor(async () => expect((await db.query(`select "tier" from "notification"."recipient" where "user_id" = $1`, [gold.id])).rows[0]?.tier).toBe('GOLD'), { timeout: 10_000, interval: 50 });

    const res = await stack.gql(op.sendCampaign, { input: { name: 'Gold', templateKey: key, category: 'MARKETING', audience: 'PLAN_TIER', tier: 'GOLD' } }, { token: adminToken });
    expect(res.data.sendCampaign.userErrors).toEqual([]);
    const id = res.data.sendCampaign.campaign.id;
    const done = await vi.waitFor(
      async () => {
        const c = (await stack.gql(campaignQuery, { id }, { token: adminToken })).data.campaign;
        expect(c.status).toBe('COMPLETED');
        return c;
      },
      { timeout: 20_000, interval: 100 },
    );
    expect(done).toMatchObject({ audienceSize: 1, processedUsers: 1, recipients: 1 });
    const { rows } = await db.query(`select "user_id" from "notification"."delivery" where "campaign_id" = $1`, [id]);
    expect(rows.map((r) => r.user_id)).toEqual([gold.id]);

    const none = await stack.gql(op.sendCampaign, { input: { name: 'Nothing', templateKey: 'marketing.none', category: 'MARKETING', audience: 'ALL_USERS' } }, { token: adminToken });
    expect(none.data.sendCampaign).toEqual({ campaign: null, userErrors: [expect.objectContaining({ code: 'TEMPLATE_NOT_FOUND', field: 'templateKey' })] });
    const noTier = await stack.gql(op.sendCampaign, { input: { name: 'T', templateKey: key, category: 'MARKETING', audience: 'PLAN_TIER' } }, { token: adminToken });
    expect(noTier.data.sendCampaign.userErrors).toEqual([expect.objectContaining({ code: 'INVALID_INPUT', field: 'tier' })]);
  }, 60_000);
});
