import { randomBytes, randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { MikroORM } from '@mikro-orm/postgresql';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { closeServer, createHttpServer, listen } from '../../platform/http/server.js';
import { createLogger } from '../../platform/log.js';
import { createSendGridEventSigner, type SignedPost } from '../../test/fakes/sendgrid.js';
import { twilioSignature } from '../../test/fakes/twilio.js';
import { migratedSubgraphDatabase } from '../../test/support/database.js';
import { notificationMigrations } from './migrations/index.js';
import { Delivery, notificationEntities, Suppression, type DeliveryStatus } from './notification.entities.js';
import { twilioStatusCallbackUrl, webhookRoutes, type WebhookSettings } from './webhooks.routes.js';
import { WebhooksService, type StatusReport } from './webhooks.service.js';

/**
 * Provider reports applied to deliveries on a real PostgreSQL: only forward, each step's event
 * once, hard bounces suppressing the address; and the signed webhook routes in front of it,
 * which refuse anything not genuine having changed nothing.
 */
const logger = createLogger('silent');
let db: Awaited<ReturnType<typeof migratedSubgraphDatabase>>;
let orm: MikroORM;
let service: WebhooksService;
let commits = 0;

beforeAll(async () => {
  db = await migratedSubgraphDatabase({ name: 'notification', entities: notificationEntities, migrations: notificationMigrations }, logger);
  orm = db.orm;
  service = new WebhooksService(orm, logger, () => commits++);
});

afterAll(async () => {
  await db?.close();
});

beforeEach(() => {
  commits = 0;
});

interface DeliveryInit {
  status?: DeliveryStatus;
  channel?: 'EMAIL' | 'SMS';
  address?: string;
  provider?: string | null;
  providerMessageId?: string | null;
  userId?: string | null;
}

const messageId = () => randomBytes(16).toString('base64url').slice(0, 22);
const sid = () => `SM${randomBytes(16).toString('hex')}`;

async function insertDelivery(init: DeliveryInit = {}): Promise<Delivery> {
  const channel = init.channel ?? 'EMAIL';
  const address = init.address ?? (channel === 'EMAIL' ? `p-${randomBytes(4).toString('hex')}@example.com` : `+1415555${String(Math.floor(Math.random() * 10_000)).padStart(4, '0')}`);
  const status = init.status ?? 'SENT';
  const sent = status !== 'QUEUED' && status !== 'SUPPRESSED';
  const em = orm.em.fork();
  const now = new Date(Date.now() - 60_000);
  const delivery = em.create(Delivery, {
    id: randomUUID(),
    dedupeKey: `event:${randomUUID()}:${channel}:${address}`,
    eventId: randomUUID(),
    campaignId: null,
    userId: init.userId === undefined ? randomUUID() : init.userId,
    channel,
    category: 'STORY',
    templateKey: 'story.published',
    locale: 'en',
    address,
    variables: {},
    status,
    provider: init.provider !== undefined ? init.provider : sent ? (channel === 'EMAIL' ? 'sendgrid' : 'twilio') : null,
    providerMessageId: init.providerMessageId !== undefined ? init.providerMessageId : sent ? (channel === 'EMAIL' ? messageId() : sid()) : null,
    attempts: sent ? 1 : 0,
    nextAttemptAt: now,
    leaseUntil: null,
    errorCode: status === 'FAILED' ? 'UNDELIVERED' : null,
    error: status === 'FAILED' ? 'earlier failure' : null,
    correlationId: null,
    createdAt: now,
    updatedAt: now,
  });
  await em.flush();
  return delivery;
}

const row = (id: string) => orm.em.fork().findOneOrFail(Delivery, { id });
const suppression = (channel: 'EMAIL' | 'SMS', address: string) => orm.em.fork().findOne(Suppression, { channel, address });

interface OutboxRow {
  type: string;
  envelope: { userId: string | null; payload: Record<string, unknown> };
}
const outbox = async (deliveryId: string): Promise<OutboxRow[]> =>
  orm.em.fork().getConnection().execute<OutboxRow[]>(`select type, envelope from notification.outbox where envelope->'payload'->>'deliveryId' = ? order by position`, [deliveryId]);
const types = async (deliveryId: string) => (await outbox(deliveryId)).map((r) => r.type);

/** A report about `d` as SendGrid would make it (its provider id, our id echoed). */
const sendgrid = (d: Delivery, status: StatusReport['status'], extra: Partial<StatusReport> = {}): StatusReport => ({
  provider: 'sendgrid',
  providerMessageId: d.providerMessageId!,
  deliveryId: d.id,
  status,
  ...extra,
});

describe('WebhooksService.apply', () => {
  it('moves only forward: a click before the delivery ends CLICKED, and the late delivered report does not move it back', async () => {
    const d = await insertDelivery();
    expect(await service.apply([sendgrid(d, 'CLICKED')])).toEqual({ applied: 1, ignored: 0 });
    expect((await row(d.id)).status).toBe('CLICKED');

    expect(await service.apply([sendgrid(d, 'DELIVERED')])).toEqual({ applied: 0, ignored: 1 });
    expect(await service.apply([sendgrid(d, 'OPENED')])).toEqual({ applied: 0, ignored: 1 });
    const after = await row(d.id);
    expect(after.status).toBe('CLICKED');
    expect(await types(d.id)).toEqual(['notification.clicked']);
    const [clicked] = await outbox(d.id);
    expect(clicked!.envelope).toMatchObject({ userId: d.userId, payload: { deliveryId: d.id, channel: 'EMAIL', provider: 'sendgrid' } });
  });

  it('reports in order each announce their step once', async () => {
    const d = await insertDelivery();
    await service.apply([sendgrid(d, 'DELIVERED'), sendgrid(d, 'OPENED'), sendgrid(d, 'CLICKED')]);
    expect((await row(d.id)).status).toBe('CLICKED');
    expect(await types(d.id)).toEqual(['notification.delivered', 'notification.opened', 'notification.clicked']);
  });

  it('a report posted twice (in one batch, and again later) emits its event once', async () => {
    const d = await insertDelivery();
    const now = new Date('2026-12-01T10:00:00Z');
    expect(await service.apply([sendgrid(d, 'DELIVERED'), sendgrid(d, 'DELIVERED')], now)).toEqual({ applied: 1, ignored: 1 });
    expect(commits).toBe(1);
    expect(await service.apply([sendgrid(d, 'DELIVERED')], new Date('2026-12-01T10:05:00Z'))).toEqual({ applied: 0, ignored: 1 });
    // Nothing new committed, nobody woken.
    expect(commits).toBe(1);
    expect(await types(d.id)).toEqual(['notification.delivered']);
    expect((await row(d.id)).updatedAt.toISOString()).toBe(now.toISOString());
  });

  it('the same report posted concurrently moves the delivery once', async () => {
    const d = await insertDelivery();
    const results = await Promise.all(Array.from({ length: 4 }, () => service.apply([sendgrid(d, 'DELIVERED')])));
    expect(results.reduce((n, r) => n + r.applied, 0)).toBe(1);
    expect(await types(d.id)).toEqual(['notification.delivered']);
  });

  it('concurrent reports about one message still only move it forward', async () => {
    const deliveries = await Promise.all(Array.from({ length: 10 }, () => insertDelivery()));
    await Promise.all(deliveries.flatMap((d) => [service.apply([sendgrid(d, 'OPENED')]), service.apply([sendgrid(d, 'DELIVERED')])]));
    for (const d of deliveries) {
      expect((await row(d.id)).status).toBe('OPENED');
      // Delivered first: both steps; opened first: the late delivered report is a step back, and says nothing.
      expect([['notification.delivered', 'notification.opened'], ['notification.opened']]).toContainEqual(await types(d.id));
    }
  });

  it('a report that arrives before the worker recorded SENT moves the delivery on and records the provider ids', async () => {
    const d = await insertDelivery({ status: 'QUEUED', channel: 'SMS' });
    expect(d.providerMessageId).toBeNull();
    const messageSid = sid();
    expect(await service.apply([{ provider: 'twilio', providerMessageId: messageSid, deliveryId: d.id, status: 'DELIVERED' }])).toEqual({ applied: 1, ignored: 0 });
    expect(await row(d.id)).toMatchObject({ status: 'DELIVERED', provider: 'twilio', providerMessageId: messageSid });
    expect(await types(d.id)).toEqual(['notification.delivered']);
    // Later reports find it by the provider's id alone.
    expect(await service.apply([{ provider: 'twilio', providerMessageId: messageSid, status: 'BOUNCED', suppress: true, reason: 'undelivered (Twilio error 30005)' }])).toEqual({ applied: 1, ignored: 0 });
    expect((await row(d.id)).status).toBe('BOUNCED');
  });

  it('a report naming our delivery but another provider message is not applied to that delivery', async () => {
    const d = await insertDelivery();
    const other = await insertDelivery();
    // Our id, with a message id the provider never gave for it (an earlier attempt's, say): unknown.
    expect(await service.apply([{ provider: 'sendgrid', providerMessageId: messageId(), deliveryId: d.id, status: 'CLICKED' }])).toEqual({ applied: 0, ignored: 1 });
    expect(await row(d.id)).toMatchObject({ status: 'SENT', providerMessageId: d.providerMessageId });
    // The provider's id decides which message it is about.
    expect(await service.apply([{ provider: 'sendgrid', providerMessageId: other.providerMessageId!, deliveryId: d.id, status: 'OPENED' }])).toEqual({ applied: 1, ignored: 0 });
    expect((await row(d.id)).status).toBe('SENT');
    expect((await row(other.id)).status).toBe('OPENED');
    expect(await types(d.id)).toEqual([]);
  });

  it('a bounce after DELIVERED is applied, suppresses the address and says why', async () => {
    const d = await insertDelivery({ status: 'DELIVERED' });
    const at = new Date('2026-12-02T08:00:00Z');
    const bounce = sendgrid(d, 'BOUNCED', { suppress: true, reason: '550 5.1.1 mailbox unavailable' });
    expect(await service.apply([bounce], at)).toEqual({ applied: 1, ignored: 0 });
    expect(await row(d.id)).toMatchObject({ status: 'BOUNCED', errorCode: 'BOUNCED', error: '550 5.1.1 mailbox unavailable' });
    expect(await suppression('EMAIL', d.address)).toMatchObject({ reason: '550 5.1.1 mailbox unavailable', deliveryId: d.id });
    expect((await suppression('EMAIL', d.address))!.createdAt.toISOString()).toBe(at.toISOString());
    const events = await outbox(d.id);
    expect(events.map((e) => e.type)).toEqual(['notification.bounced']);
    expect(events[0]!.envelope.payload).toEqual({ deliveryId: d.id, channel: 'EMAIL', provider: 'sendgrid', reason: '550 5.1.1 mailbox unavailable' });
    // Posted again: no second event, the suppression row stays the first one.
    expect(await service.apply([bounce])).toEqual({ applied: 0, ignored: 1 });
    expect(await types(d.id)).toEqual(['notification.bounced']);
    expect((await suppression('EMAIL', d.address))!.createdAt.toISOString()).toBe(at.toISOString());
  });

  it('a bounce posted again after the owner set the address again does not suppress it anew', async () => {
    const d = await insertDelivery({ status: 'SENT' });
    const bounce = sendgrid(d, 'BOUNCED', { suppress: true, reason: '550 no such user' });
    await service.apply([bounce]);
    expect(await suppression('EMAIL', d.address)).not.toBeNull();
    // What setting the address again does (PeopleService.setPhone for SMS): the suppression goes.
    await orm.em.fork().nativeDelete(Suppression, { channel: 'EMAIL', address: d.address });
    expect(await service.apply([bounce])).toEqual({ applied: 0, ignored: 1 });
    expect(await suppression('EMAIL', d.address)).toBeNull();
  });

  it('a spam complaint about a message already clicked suppresses the address without moving the delivery', async () => {
    const d = await insertDelivery({ status: 'CLICKED' });
    expect(await service.apply([sendgrid(d, 'DELIVERED', { suppress: 'OPT_OUT', reason: 'spam complaint' })])).toEqual({ applied: 0, ignored: 1 });
    expect((await row(d.id)).status).toBe('CLICKED');
    expect(await suppression('EMAIL', d.address)).toMatchObject({ reason: 'spam complaint', kind: 'OPT_OUT', deliveryId: d.id });
    expect(await types(d.id)).toEqual([]);
  });

  it('a FAILED report records the failure with its event', async () => {
    const d = await insertDelivery({ channel: 'SMS' });
    await service.apply([{ provider: 'twilio', providerMessageId: d.providerMessageId!, deliveryId: d.id, status: 'FAILED', reason: 'undelivered (Twilio error 30003)' }]);
    expect(await row(d.id)).toMatchObject({ status: 'FAILED', errorCode: 'UNDELIVERED', error: 'undelivered (Twilio error 30003)' });
    expect(await suppression('SMS', d.address)).toBeNull();
    const events = await outbox(d.id);
    expect(events.map((e) => e.type)).toEqual(['notification.failed']);
    expect(events[0]!.envelope.payload).toEqual({ deliveryId: d.id, channel: 'SMS', provider: 'twilio', code: 'UNDELIVERED', error: 'undelivered (Twilio error 30003)' });
  });

  it('reports about messages we do not know are ignored', async () => {
    const before = await orm.em.fork().count(Suppression, {});
    const reports: StatusReport[] = [
      { provider: 'sendgrid', providerMessageId: messageId(), status: 'DELIVERED' },
      { provider: 'sendgrid', providerMessageId: messageId(), deliveryId: randomUUID(), status: 'BOUNCED', suppress: true },
      // Not a uuid: never reaches the database as one.
      { provider: 'sendgrid', providerMessageId: messageId(), deliveryId: 'not-a-uuid', status: 'CLICKED' },
    ];
    expect(await service.apply(reports)).toEqual({ applied: 0, ignored: 3 });
    expect(await orm.em.fork().count(Suppression, {})).toBe(before);
    expect(commits).toBe(0);
  });

  it('a provider id of another provider does not name the delivery', async () => {
    const d = await insertDelivery();
    expect(await service.apply([{ provider: 'mailgun', providerMessageId: d.providerMessageId!, status: 'DELIVERED' }])).toEqual({ applied: 0, ignored: 1 });
    expect((await row(d.id)).status).toBe('SENT');
  });

  it('a FAILED delivery never changes again', async () => {
    const d = await insertDelivery({ status: 'FAILED' });
    for (const status of ['SENT', 'DELIVERED', 'OPENED', 'CLICKED', 'BOUNCED', 'FAILED'] as const) {
      expect(await service.apply([sendgrid(d, status, { reason: 'late' })]), status).toEqual({ applied: 0, ignored: 1 });
    }
    expect(await row(d.id)).toMatchObject({ status: 'FAILED', errorCode: 'UNDELIVERED', error: 'earlier failure' });
    expect(await types(d.id)).toEqual([]);
  });
});

describe('the webhook routes', () => {
  const PUBLIC_URL = 'https://api.storyloom.test/';
  const AUTH_TOKEN = randomBytes(16).toString('hex');
  const signer = createSendGridEventSigner();
  let configured: { server: Server; url: string };
  let unconfigured: { server: Server; url: string };

  async function serve(settings: WebhookSettings) {
    const server = createHttpServer(webhookRoutes(service, settings, logger), logger);
    return { server, url: await listen(server, 0, '127.0.0.1') };
  }

  beforeAll(async () => {
    configured = await serve({ sendGridPublicKey: signer.publicKey, twilioAuthToken: AUTH_TOKEN, publicUrl: () => PUBLIC_URL });
    unconfigured = await serve({ sendGridPublicKey: undefined, twilioAuthToken: undefined, publicUrl: () => PUBLIC_URL });
  });
  afterAll(async () => {
    if (configured) await closeServer(configured.server);
    if (unconfigured) await closeServer(unconfigured.server);
  });

  const post = (url: string, body: Buffer | string, headers: Record<string, string> = {}) =>
    fetch(url, { method: 'POST', headers, body: typeof body === 'string' ? body : new Uint8Array(body) });
  const postSendGrid = (signed: SignedPost, base = configured.url) => post(`${base}/webhooks/sendgrid`, signed.body, signed.headers);

  /** SendGrid's event about delivery `d`, as its webhook posts it. */
  const sgEvent = (d: Delivery, event: string, extra: Record<string, unknown> = {}) => ({
    email: d.address,
    timestamp: Math.floor(Date.now() / 1000),
    event,
    sg_event_id: randomBytes(12).toString('base64url'),
    sg_message_id: `${d.providerMessageId}.filterdrecv-7d5c6b-1-6543.0`,
    deliveryId: d.id,
    ...extra,
  });

  /** Twilio's callback about `d`, to the URL the worker gave it (through the gateway), signed over that URL. */
  function twilioCallback(d: Delivery, messageSid: string, status: string, options: { token?: string; errorCode?: string; url?: string } = {}) {
    const params: Record<string, string> = {
      ApiVersion: '2010-04-01',
      AccountSid: `AC${'1'.repeat(32)}`,
      MessageSid: messageSid,
      SmsSid: messageSid,
      MessageStatus: status,
      SmsStatus: status,
      From: '+15005550006',
      To: d.address,
      ...(options.errorCode ? { ErrorCode: options.errorCode } : {}),
    };
    const publicUrl = options.url ?? twilioStatusCallbackUrl(PUBLIC_URL, d.id);
    return {
      params,
      body: new URLSearchParams(params).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': twilioSignature(options.token ?? AUTH_TOKEN, publicUrl, params) },
    };
  }
  /** The gateway forwards /webhooks/notification/twilio/status?… here as /webhooks/twilio/status?…. */
  const twilioPath = (d: Delivery) => `/webhooks/twilio/status?deliveryId=${encodeURIComponent(d.id)}`;

  /** What a refused post must leave as it was. */
  async function snapshot(d: Delivery) {
    const current = await row(d.id);
    return { status: current.status, providerMessageId: current.providerMessageId, updatedAt: current.updatedAt.toISOString(), events: await types(d.id), suppressed: (await suppression(d.channel, d.address)) !== null };
  }

  it('applies a genuine SendGrid post (200)', async () => {
    const d = await insertDelivery();
    const response = await postSendGrid(signer.signedEvents([sgEvent(d, 'processed'), sgEvent(d, 'delivered'), sgEvent(d, 'open')]));
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ applied: 2, ignored: 0 });
    expect((await row(d.id)).status).toBe('OPENED');
    expect(await types(d.id)).toEqual(['notification.delivered', 'notification.opened']);
  });

  it('a genuine hard bounce through the route suppresses the address', async () => {
    const d = await insertDelivery({ status: 'DELIVERED' });
    const response = await postSendGrid(signer.signedEvents([sgEvent(d, 'bounce', { type: 'bounce', reason: '550 no such user' })]));
    expect(response.status).toBe(200);
    expect((await row(d.id)).status).toBe('BOUNCED');
    expect(await suppression('EMAIL', d.address)).toMatchObject({ deliveryId: d.id, reason: '550 no such user' });
  });

  it('refuses forged, unsigned and stale SendGrid posts (403), and changes nothing', async () => {
    const d = await insertDelivery();
    const before = await snapshot(d);
    const events = [sgEvent(d, 'bounce', { type: 'bounce', reason: 'forged' })];
    const forged = createSendGridEventSigner().signedEvents(events);
    expect((await postSendGrid(forged)).status).toBe(403);
    const genuine = signer.signedEvents(events);
    expect((await post(`${configured.url}/webhooks/sendgrid`, genuine.body, { 'content-type': 'application/json' })).status).toBe(403);
    // The body changed after signing.
    expect((await postSendGrid({ body: Buffer.from(genuine.body.toString('utf8').replace('forged', 'f0rged')), headers: genuine.headers })).status).toBe(403);
    const stale = signer.signedEvents(events, { timestamp: Math.floor(Date.now() / 1000) - 3600 });
    const answer = await postSendGrid(stale);
    expect(answer.status).toBe(403);
    expect(await answer.json()).toMatchObject({ errors: [{ extensions: { code: 'FORBIDDEN' } }] });
    expect(await snapshot(d)).toEqual(before);
  });

  it('refuses every post when no key is configured (403)', async () => {
    const d = await insertDelivery({ channel: 'SMS' });
    const e = await insertDelivery();
    const before = [await snapshot(d), await snapshot(e)];
    expect((await postSendGrid(signer.signedEvents([sgEvent(e, 'click')]), unconfigured.url)).status).toBe(403);
    const callback = twilioCallback(d, d.providerMessageId!, 'undelivered', { errorCode: '30005' });
    expect((await post(`${unconfigured.url}${twilioPath(d)}`, callback.body, callback.headers)).status).toBe(403);
    expect([await snapshot(d), await snapshot(e)]).toEqual(before);
  });

  it('answers a signed but malformed SendGrid body 400, and changes nothing', async () => {
    const d = await insertDelivery();
    const before = await snapshot(d);
    for (const body of ['not json\r\n', '{"event":"delivered"}\r\n', '[42]\r\n', JSON.stringify([{ ...sgEvent(d, 'delivered'), sg_message_id: 7 }])]) {
      const response = await postSendGrid(signer.signedEvents(body));
      expect(response.status, body).toBe(400);
      expect(await response.json()).toMatchObject({ errors: [{ extensions: { code: 'BAD_REQUEST' } }] });
    }
    expect(await snapshot(d)).toEqual(before);
  });

  it('answers GET 405 with Allow: POST', async () => {
    for (const path of ['/webhooks/sendgrid', '/webhooks/twilio/status']) {
      const response = await fetch(`${configured.url}${path}`);
      expect(response.status, path).toBe(405);
      expect(response.headers.get('allow')).toBe('POST');
      await response.body?.cancel();
    }
  });

  it('answers a body over 1 MB 413, and changes nothing', async () => {
    const d = await insertDelivery();
    const before = await snapshot(d);
    const events = [sgEvent(d, 'click', { url: `https://storyloom.test/?q=${'x'.repeat(1024 * 1024)}` })];
    const response = await postSendGrid(signer.signedEvents(events));
    expect(response.status).toBe(413);
    expect(await response.json()).toMatchObject({ errors: [{ extensions: { code: 'PAYLOAD_TOO_LARGE' } }] });
    const callback = twilioCallback(d, d.providerMessageId!, 'delivered');
    const big = await post(`${configured.url}${twilioPath(d)}`, `${callback.body}&Padding=${'y'.repeat(1024 * 1024)}`, callback.headers);
    expect(big.status).toBe(413);
    await big.body?.cancel();
    expect(await snapshot(d)).toEqual(before);
  });

  it('applies a genuine Twilio callback signed over the public URL with its query (200)', async () => {
    const d = await insertDelivery({ status: 'QUEUED', channel: 'SMS' });
    const messageSid = sid();
    const sent = twilioCallback(d, messageSid, 'sent');
    const response = await post(`${configured.url}${twilioPath(d)}`, sent.body, sent.headers);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ applied: 1, ignored: 0 });
    expect(await row(d.id)).toMatchObject({ status: 'SENT', provider: 'twilio', providerMessageId: messageSid });
    const queued = twilioCallback(d, messageSid, 'queued');
    expect(await (await post(`${configured.url}${twilioPath(d)}`, queued.body, queued.headers)).json()).toEqual({ applied: 0, ignored: 0 });
    const bounced = twilioCallback(d, messageSid, 'undelivered', { errorCode: '30005' });
    expect((await post(`${configured.url}${twilioPath(d)}`, bounced.body, bounced.headers)).status).toBe(200);
    expect(await row(d.id)).toMatchObject({ status: 'BOUNCED', error: 'undelivered (Twilio error 30005)' });
    expect(await suppression('SMS', d.address)).toMatchObject({ deliveryId: d.id });
    expect(await types(d.id)).toEqual(['notification.bounced']);
  });

  it('refuses forged, unsigned and re-targeted Twilio callbacks (403), and changes nothing', async () => {
    const d = await insertDelivery({ channel: 'SMS' });
    const victim = await insertDelivery({ channel: 'SMS' });
    const before = [await snapshot(d), await snapshot(victim)];
    const forged = twilioCallback(d, d.providerMessageId!, 'undelivered', { errorCode: '30005', token: 'not-the-token' });
    expect((await post(`${configured.url}${twilioPath(d)}`, forged.body, forged.headers)).status).toBe(403);
    const genuine = twilioCallback(d, d.providerMessageId!, 'undelivered', { errorCode: '30005' });
    const { 'x-twilio-signature': _, ...unsigned } = genuine.headers;
    expect((await post(`${configured.url}${twilioPath(d)}`, genuine.body, unsigned)).status).toBe(403);
    // A genuine callback replayed to another delivery's URL: the signature covers the query.
    expect((await post(`${configured.url}${twilioPath(victim)}`, genuine.body, genuine.headers)).status).toBe(403);
    // Signed over the subgraph's own address rather than the public one Twilio was given.
    const internal = twilioCallback(d, d.providerMessageId!, 'undelivered', { errorCode: '30005', url: `${configured.url}${twilioPath(d)}` });
    expect((await post(`${configured.url}${twilioPath(d)}`, internal.body, internal.headers)).status).toBe(403);
    // A field added after signing.
    expect((await post(`${configured.url}${twilioPath(d)}`, `${genuine.body}&Extra=1`, genuine.headers)).status).toBe(403);
    expect([await snapshot(d), await snapshot(victim)]).toEqual(before);
  });

  it('answers a signed Twilio callback without MessageSid 400', async () => {
    const d = await insertDelivery({ channel: 'SMS' });
    const before = await snapshot(d);
    const params = { MessageStatus: 'delivered', AccountSid: `AC${'1'.repeat(32)}` };
    const url = twilioStatusCallbackUrl(PUBLIC_URL, d.id);
    const response = await post(`${configured.url}${twilioPath(d)}`, new URLSearchParams(params).toString(), {
      'content-type': 'application/x-www-form-urlencoded',
      'x-twilio-signature': twilioSignature(AUTH_TOKEN, url, params),
    });
    expect(response.status).toBe(400);
    await response.body?.cancel();
    expect(await snapshot(d)).toEqual(before);
  });
});
