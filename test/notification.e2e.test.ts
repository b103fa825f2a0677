import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createEnvelope } from '../platform/events/envelope.js';
import { captureEvents } from './support/capture.js';
import { clientOperation } from './support/clients.js';
import { TALE, analysisCompleted, registerMember } from './support/people.js';
import { startTestStack, type TestStack } from './support/stack.js';
import { startMailgunFake, type MailgunFake } from './fakes/mailgun.js';
import { createSendGridEventSigner, startSendGridFake, type SendGridFake, type SendGridSentMessage } from './fakes/sendgrid.js';
import { startMessageBirdFake, type MessageBirdFake } from './fakes/messagebird.js';
import { startTwilioFake, type TwilioFake } from './fakes/twilio.js';

/**
 * ../shared/clients/notification.graphql through the gateway, with every provider's official
 * SDK pointed at its fake: invitations by email (SendGrid, Mailgun as fallback) and SMS (Twilio,
 * MessageBird as fallback), signed webhooks through the gateway's host, preferences, retries.
 */
const op = {
  register: clientOperation('Register'),
  createStory: clientOperation('CreateStory'),
  publish: clientOperation('PublishStory'),
  changePlan: clientOperation('ChangePlan'),
  createTemplate: clientOperation('CreateRoleplayTemplate'),
  invite: clientOperation('InviteCollaborator'),
  preferences: clientOperation('MyNotificationPreferences'),
  setPreference: clientOperation('SetNotificationPreference'),
  deliveries: clientOperation('MyDeliveries'),
};

let stack: TestStack;
let sendgrid: SendGridFake;
let mailgun: MailgunFake;
let twilio: TwilioFake;
let messagebird: MessageBirdFake;
let events: Awaited<ReturnType<typeof captureEvents>>;
let db: pg.Client;

beforeAll(async () => {
  [sendgrid, mailgun, twilio, messagebird] = await Promise.all([startSendGridFake(), startMailgunFake(), startTwilioFake(), startMessageBirdFake()]);
  stack = await startTestStack({
    env: {
      NOTIFICATION_EMAIL_PROVIDERS: 'sendgrid,mailgun',
      SENDGRID_API_KEY: sendgrid.apiKey,
      SENDGRID_BASE_URL: sendgrid.url,
      SENDGRID_WEBHOOK_PUBLIC_KEY: sendgrid.publicKey,
      MAILGUN_API_KEY: mailgun.apiKey,
      MAILGUN_DOMAIN: mailgun.domain,
      MAILGUN_BASE_URL: mailgun.url,
      NOTIFICATION_SMS_PROVIDERS: 'twilio,messagebird',
      TWILIO_ACCOUNT_SID: twilio.accountSid,
      TWILIO_AUTH_TOKEN: twilio.authToken,
      TWILIO_FROM: '+15005550006',
      TWILIO_BASE_URL: twilio.url,
      MESSAGEBIRD_ACCESS_KEY: messagebird.accessKey,
      MESSAGEBIRD_ORIGINATOR: 'Storyloom',
      MESSAGEBIRD_BASE_URL: messagebird.url,
      NOTIFICATION_RETRY_BASE_MS: '5',
      NOTIFICATION_POLL_MS: '100',
      NOTIFICATION_TIMEOUT_MS: '2000',
    },
  });
  events = await captureEvents(stack.transport, ['notification.>', 'preference.changed', 'collaboration.invitation.sent']);
  db = new pg.Client({ connectionString: stack.databaseUrl });
  await db.connect();
});

afterAll(async () => {
  await db?.end();
  await events?.stop();
  await stack?.close();
  await Promise.all([sendgrid?.close(), mailgun?.close(), twilio?.close(), messagebird?.close()]);
});

async function member(name: string, locale?: string) {
  const email = `${name.toLowerCase()}-${randomUUID().slice(0, 8)}@example.com`;
  const res = await stack.gql(op.register, { input: { email, password: 'correct horse battery', displayName: name, ...(locale ? { locale } : {}) } });
  expect(res.data.register.userErrors).toEqual([]);
  return { id: res.data.register.user.id as string, token: res.data.register.session.accessToken as string, email };
}

/** A published, analysed story of the member's made into a roleplay: its template id and characters. */
async function roleplay(token: string, title: string) {
  const story = (await stack.gql(op.createStory, { input: { title, content: TALE } }, { token })).data.createStory.story;
  expect((await stack.gql(op.publish, { id: story.id }, { token })).data.publishStory.userErrors).toEqual([]);
  await analysisCompleted(stack, token, story.id);
  const made = await stack.gql(op.createTemplate, { storyId: story.id }, { token });
  expect(made.data.createRoleplayTemplate.userErrors).toEqual([]);
  const template = made.data.createRoleplayTemplate.template;
  return { id: template.id as string, character: (name: string) => template.characters.find((c: { name: string }) => c.name === name).id as string };
}

async function invite(token: string, input: Record<string, unknown>) {
  const res = await stack.gql(op.invite, { input }, { token });
  expect(res.errors).toBeUndefined();
  expect(res.data.inviteCollaborator.userErrors).toEqual([]);
  return res.data.inviteCollaborator.inviteUrl as string;
}

const emailsTo = (address: string) => sendgrid.messages.filter((m) => m.to.includes(address));
async function emailTo(address: string, predicate: (m: SendGridSentMessage) => boolean = () => true) {
  return vi.waitFor(
    () => {
      const found = emailsTo(address).find(predicate);
      if (!found) throw new Error(`no email to ${address} yet`);
      return found;
    },
    { timeout: 10_000, interval: 25 },
  );
}

async function myDeliveries(token: string) {
  const res = await stack.gql(op.deliveries, { first: 50 }, { token });
  expect(res.errors).toBeUndefined();
  return res.data.me.deliveries as { totalCount: number; edges: { node: Record<string, any> }[] };
}

const webhookUrl = (path: string) => `${new URL(stack.app.gatewayUrl).origin}/webhooks/notification${path}`;
const postSendGrid = (post: { body: Buffer; headers: Record<string, string> }) =>
  fetch(webhookUrl('/sendgrid'), { method: 'POST', headers: { 'content-type': 'application/json', ...post.headers }, body: post.body });

async function deliveryRow(id: string) {
  const { rows } = await db.query('select * from "notification"."delivery" where "id" = $1', [id]);
  return rows[0];
}

async function statusBecomes(id: string, status: string) {
  await vi.waitFor(async () => expect((await deliveryRow(id))?.status).toBe(status), { timeout: 10_000, interval: 25 });
}

describe('an invitation by email', () => {
  it("reaches SendGrid in the invitee's locale; signed webhooks mark it DELIVERED, then OPENED, then CLICKED", async () => {
    const ada = await registerMember(stack, 'Ada');
    const gia = await member('Gia', 'fr-CA');
    const play = await roleplay(ada.token, 'Le Phare');
    // The author knew an address only, written her way: the delivery is still Gia's.
    const inviteUrl = await invite(ada.token, { templateId: play.id, characterId: play.character('Mira'), name: 'Gia <b>', email: gia.email.toUpperCase() });

    const mail = await emailTo(gia.email, (m) => m.subject?.includes('Mira') ?? false);
    // fr-CA finds the French template; the link is the one the author was shown.
    // French typography: the guillemets hold non-breaking spaces.
    expect(mail.subject?.replace(/[\u00a0\u202f]/g, ' ')).toBe('Ada vous invite à jouer Mira dans « Le Phare »');
    expect(mail.text).toContain(`Bonjour Gia <b>,`);
    expect(mail.text).toContain(inviteUrl);
    expect(mail.html).toContain(`<p>Bonjour Gia &lt;b&gt;,</p>`);
    expect(mail.html).toContain(`href="${inviteUrl}"`);
    expect(mail.customArgs.deliveryId).toMatch(/^[0-9a-f-]{36}$/);
    const deliveryId = mail.customArgs.deliveryId!;

    // The stream and the event log never see the link: the invitation's event carries it sealed.
    const sentEvent = await events.waitFor((e) => e.type === 'collaboration.invitation.sent' && e.payload.inviteeEmail === gia.email);
    expect(sentEvent.payload.inviteLinkSealed).toMatch(/^v1\./);
    expect(JSON.stringify(sentEvent.payload)).not.toContain(new URL(inviteUrl).pathname.split('/').at(-1));

    await vi.waitFor(async () => expect((await myDeliveries(gia.token)).edges.map((e) => e.node)).toContainEqual(expect.objectContaining({ id: deliveryId, status: 'SENT' })), { timeout: 10_000, interval: 25 });
    const listed = (await myDeliveries(gia.token)).edges.find((e) => e.node.id === deliveryId)!.node;
    expect(listed).toMatchObject({ channel: 'EMAIL', category: 'COLLABORATION', provider: 'sendgrid', template: 'collaboration.invitation.sent', locale: 'fr-CA' });
    // Not the author's.
    expect((await myDeliveries(ada.token)).edges.map((e) => e.node.id)).not.toContain(deliveryId);

    for (const [event, status] of [['delivered', 'DELIVERED'], ['open', 'OPENED'], ['click', 'CLICKED']] as const) {
      const res = await postSendGrid(sendgrid.signedEvents([sendgrid.eventFor(mail, event, event === 'click' ? { url: inviteUrl } : {})]));
      expect(res.status).toBe(200);
      await statusBecomes(deliveryId, status);
    }
    for (const type of ['notification.requested', 'notification.sent', 'notification.delivered', 'notification.opened', 'notification.clicked']) {
      await events.waitFor((e) => e.type === type && e.payload.deliveryId === deliveryId);
    }
    // A late "delivered" (SendGrid posts out of order) does not move it back.
    expect((await postSendGrid(sendgrid.signedEvents([sendgrid.eventFor(mail, 'delivered')]))).status).toBe(200);
    expect((await deliveryRow(deliveryId)).status).toBe('CLICKED');
    expect((await myDeliveries(gia.token)).edges.find((e) => e.node.id === deliveryId)!.node.status).toBe('CLICKED');
  });

  it('refuses a forged, unsigned or stale webhook, and it changes nothing', async () => {
    const bo = await member('Bo');
    const welcome = await emailTo(bo.email);
    const deliveryId = welcome.customArgs.deliveryId!;
    await statusBecomes(deliveryId, 'SENT');
    const bounce = [sendgrid.eventFor(welcome, 'bounce', { reason: '550 no such user' })];

    const forger = createSendGridEventSigner();
    const forged = forger.signedEvents(bounce);
    const stale = sendgrid.signedEvents(bounce, { timestamp: Math.floor(Date.now() / 1000) - 3600 });
    const genuine = sendgrid.signedEvents(bounce);
    const tampered = { headers: genuine.headers, body: Buffer.from(genuine.body.toString('utf8').replace('550 no such user', '550 no such user!')) };
    for (const post of [forged, stale, tampered, { headers: {}, body: genuine.body }]) {
      expect((await postSendGrid(post)).status).toBe(403);
    }
    expect((await deliveryRow(deliveryId)).status).toBe('SENT');
    expect((await db.query('select count(*)::int as n from "notification"."suppression"')).rows[0].n).toBe(0);

    // The genuine one bounces it and suppresses the address: the next message to it is not sent.
    expect((await postSendGrid(genuine)).status).toBe(200);
    await statusBecomes(deliveryId, 'BOUNCED');
    await events.waitFor((e) => e.type === 'notification.bounced' && e.payload.deliveryId === deliveryId);
    const before = emailsTo(bo.email).length;
    expect((await stack.gql(op.changePlan, { tier: 'SILVER' }, { token: bo.token })).data.changePlan.userErrors).toEqual([]);
    await vi.waitFor(async () => expect((await myDeliveries(bo.token)).edges.map((e) => [e.node.template, e.node.status])).toContainEqual(['subscription.upgraded', 'SUPPRESSED']), {
      timeout: 10_000,
      interval: 25,
    });
    expect(emailsTo(bo.email).length).toBe(before);
  });
});

describe('an invitation by SMS', () => {
  it('reaches Twilio through its SDK; the signed status callback marks it DELIVERED, a forged one changes nothing', async () => {
    const ada = await registerMember(stack, 'Ada');
    const play = await roleplay(ada.token, 'The Ferry');
    const phone = `+1555${String(Math.floor(Math.random() * 1e7)).padStart(7, '0')}`;
    const inviteUrl = await invite(ada.token, { templateId: play.id, characterId: play.character('Old Tom'), name: 'Sam', phone });

    const sms = await vi.waitFor(
      () => {
        const found = twilio.messages.find((m) => m.to === phone);
        if (!found) throw new Error('no SMS yet');
        return found;
      },
      { timeout: 10_000, interval: 25 },
    );
    expect(sms.body).toContain(inviteUrl);
    expect(sms.body).toContain('Old Tom');
    expect(sms.statusCallback).toMatch(new RegExp(`^${webhookUrl('/twilio/status')}\\?deliveryId=`));
    const deliveryId = new URL(sms.statusCallback!).searchParams.get('deliveryId')!;
    await statusBecomes(deliveryId, 'SENT');
    const row = await deliveryRow(deliveryId);
    // Nobody registered has that number: the delivery is the address's alone, in the inviter's language.
    expect(row).toMatchObject({ channel: 'SMS', user_id: null, provider: 'twilio', provider_message_id: sms.sid, locale: 'en' });

    // A callback signed with another token, and one whose fields were changed after signing.
    const forged = await fetch(sms.statusCallback!, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': 'bm90IGEgc2lnbmF0dXJl' },
      body: new URLSearchParams({ MessageSid: sms.sid, MessageStatus: 'undelivered', ErrorCode: '30005' }).toString(),
    });
    expect(forged.status).toBe(403);
    const genuine = twilio.statusCallback(sms.sid, 'delivered');
    const altered = await fetch(genuine.url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': genuine.signature },
      body: genuine.body.replace('delivered', 'undelivered'),
    });
    expect(altered.status).toBe(403);
    expect((await deliveryRow(deliveryId)).status).toBe('SENT');

    const posted = await twilio.postStatusCallback(sms.sid, 'delivered');
    expect(posted.status).toBe(200);
    await statusBecomes(deliveryId, 'DELIVERED');
    await events.waitFor((e) => e.type === 'notification.delivered' && e.payload.deliveryId === deliveryId);
  });
});

describe('a phone number', () => {
  const setPhone = `mutation($input: SetNotificationPhoneInput!) { setNotificationPhone(input: $input) { phone pendingPhone userErrors { code field } } }`;
  const confirm = `mutation($input: ConfirmNotificationPhoneInput!) { confirmNotificationPhone(input: $input) { phone pendingPhone userErrors { code field } } }`;

  it('counts once confirmed with the code sent to it; then SMS to it are its owner\'s, also when the sender only knew the number', async () => {
    const ada = await registerMember(stack, 'Ada');
    const ivy = await member('Ivy');
    const eve = await member('Eve');
    const phone = `+1555${String(Math.floor(Math.random() * 1e7)).padStart(7, '0')}`;
    // Not before the directory knows Ivy (her welcome was queued once it did).
    await emailTo(ivy.email);
    expect((await stack.gql(setPhone, { input: { phone } }, { token: ivy.token })).data.setNotificationPhone).toEqual({ phone: null, pendingPhone: phone, userErrors: [] });
    const sms = await vi.waitFor(
      () => {
        const found = twilio.messages.find((m) => m.to === phone && /code/.test(m.body));
        if (!found) throw new Error('no code yet');
        return found;
      },
      { timeout: 10_000, interval: 25 },
    );
    const code = /(\d{6})/.exec(sms.body)![1]!;
    // The code is in no delivery row and no event: only in the message.
    const { rows } = await db.query(`select count(*)::int as n from "notification"."delivery" where "variables"::text like $1`, [`%${code}%`]);
    expect(rows[0].n).toBe(0);

    const wrong = String((Number(code) + 1) % 1_000_000).padStart(6, '0');
    expect((await stack.gql(confirm, { input: { code: wrong } }, { token: ivy.token })).data.confirmNotificationPhone.userErrors).toEqual([{ code: 'WRONG_CODE', field: 'code' }]);
    // Someone else cannot take the number with Ivy's code.
    expect((await stack.gql(confirm, { input: { code } }, { token: eve.token })).data.confirmNotificationPhone.userErrors).toEqual([{ code: 'NO_PENDING_PHONE', field: 'code' }]);
    expect((await stack.gql(confirm, { input: { code } }, { token: ivy.token })).data.confirmNotificationPhone).toEqual({ phone, pendingPhone: null, userErrors: [] });
    expect((await stack.gql(`{ me { notificationPhone } }`, {}, { token: ivy.token })).data.me.notificationPhone).toBe(phone);

    const play = await roleplay(ada.token, 'The Lamp');
    await invite(ada.token, { templateId: play.id, characterId: play.character('Mira'), name: 'Ivy', phone });
    await vi.waitFor(
      async () => expect((await myDeliveries(ivy.token)).edges.map((e) => [e.node.channel, e.node.template])).toContainEqual(['SMS', 'collaboration.invitation.sent']),
      { timeout: 10_000, interval: 25 },
    );
  });

  it('refuses a number that is not E.164', async () => {
    const joe = await member('Joe');
    await emailTo(joe.email);
    expect((await stack.gql(setPhone, { input: { phone: '555-1234' } }, { token: joe.token })).data.setNotificationPhone.userErrors).toEqual([{ code: 'INVALID_PHONE', field: 'phone' }]);
  });
});

describe('preferences', () => {
  it('turning COLLABORATION email off stops those emails but not ACCOUNT or BILLING ones, which cannot be turned off', async () => {
    const ada = await registerMember(stack, 'Ada');
    const kim = await member('Kim');
    await emailTo(kim.email, (m) => m.customArgs.deliveryId !== undefined); // the welcome (ACCOUNT)

    const before = (await stack.gql(op.preferences, {}, { token: kim.token })).data.me.notificationPreferences;
    expect(before).toHaveLength(14);
    expect(before).toContainEqual({ category: 'COLLABORATION', channel: 'EMAIL', enabled: true });
    expect(before).toContainEqual({ category: 'MARKETING', channel: 'EMAIL', enabled: false });

    const off = await stack.gql(op.setPreference, { input: { category: 'COLLABORATION', channel: 'EMAIL', enabled: false } }, { token: kim.token });
    expect(off.data.setNotificationPreference).toEqual({ preference: { category: 'COLLABORATION', channel: 'EMAIL', enabled: false }, userErrors: [] });
    const refused = await stack.gql(op.setPreference, { input: { category: 'ACCOUNT', channel: 'EMAIL', enabled: false } }, { token: kim.token });
    expect(refused.data.setNotificationPreference.userErrors).toEqual([{ code: 'REQUIRED_CATEGORY', field: 'enabled', message: expect.stringContaining('required') }]);
    const after = (await stack.gql(op.preferences, {}, { token: kim.token })).data.me.notificationPreferences;
    expect(after).toContainEqual({ category: 'COLLABORATION', channel: 'EMAIL', enabled: false });
    expect(after).toContainEqual({ category: 'ACCOUNT', channel: 'EMAIL', enabled: true });
    await events.waitFor((e) => e.type === 'preference.changed' && e.userId === kim.id && e.payload.category === 'COLLABORATION' && e.payload.enabled === false);

    const play = await roleplay(ada.token, 'The Cape');
    await invite(ada.token, { templateId: play.id, characterId: play.character('Mira'), name: 'Kim', email: kim.email });
    // The upgrade is handled after the invitation (one consumer, in stream order): once its
    // BILLING email is there, the invitation was handled, and sent nothing.
    expect((await stack.gql(op.changePlan, { tier: 'GOLD' }, { token: kim.token })).data.changePlan.userErrors).toEqual([]);
    await emailTo(kim.email, (m) => m.subject?.includes('Gold') ?? false);
    expect(emailsTo(kim.email).filter((m) => m.subject?.includes('Mira'))).toEqual([]);
    expect((await myDeliveries(kim.token)).edges.map((e) => e.node.template).sort()).toEqual(['subscription.upgraded', 'user.registered']);
  });
});

describe('providers failing', () => {
  it('delivers once when SendGrid answers 500 twice, then 202', async () => {
    sendgrid.failNext(500, 2);
    const requestsBefore = sendgrid.requests.length;
    const lee = await member('Lee');
    const mail = await emailTo(lee.email);
    await statusBecomes(mail.customArgs.deliveryId!, 'SENT');
    expect(emailsTo(lee.email)).toHaveLength(1);
    expect(sendgrid.requests.length - requestsBefore).toBe(3);
    expect(mailgun.messages.filter((m) => m.to.includes(lee.email))).toHaveLength(0);
    const sentEvent = await events.waitFor((e) => e.type === 'notification.sent' && e.payload.deliveryId === mail.customArgs.deliveryId);
    expect(sentEvent.payload.provider).toBe('sendgrid');
  });

  it('falls back to Mailgun when SendGrid is down, and to MessageBird when Twilio is', async () => {
    sendgrid.down();
    twilio.down();
    try {
      const max = await member('Max');
      const mail = await vi.waitFor(
        () => {
          const found = mailgun.messages.find((m) => m.to.includes(max.email));
          if (!found) throw new Error('no Mailgun message yet');
          return found;
        },
        { timeout: 10_000, interval: 25 },
      );
      expect(mail.subject).toContain('Max');
      const deliveryId = mail.variables.deliveryId!;
      await statusBecomes(deliveryId, 'SENT');
      expect((await deliveryRow(deliveryId)).provider).toBe('mailgun');
      expect(emailsTo(max.email)).toHaveLength(0);

      const ada = await registerMember(stack, 'Ada');
      const play = await roleplay(ada.token, 'The Storm');
      const phone = `+1555${String(Math.floor(Math.random() * 1e7)).padStart(7, '0')}`;
      await invite(ada.token, { templateId: play.id, characterId: play.character('Mira'), name: 'Ola', phone });
      const sms = await vi.waitFor(
        () => {
          const found = messagebird.messages.find((m) => m.recipients.includes(phone.slice(1)) || m.recipients.includes(phone));
          if (!found) throw new Error('no MessageBird message yet');
          return found;
        },
        { timeout: 10_000, interval: 25 },
      );
      expect(sms.body).toContain('Mira');
      expect(twilio.messages.filter((m) => m.to === phone)).toHaveLength(0);
    } finally {
      sendgrid.up();
      twilio.up();
    }
  });
});

describe('events from before notification existed', () => {
  it('fill the directory and send nothing; what happens afterwards is sent', async () => {
    const userId = randomUUID();
    const email = `old-${userId.slice(0, 8)}@example.com`;
    const past = createEnvelope({ type: 'user.registered', userId, payload: { userId, email, displayName: 'Old Timer', locale: 'en', provider: 'local' } }, { serviceName: 'identity' }, new Date('2020-01-01T00:00:00Z'));
    await stack.transport.publish(past);
    await vi.waitFor(async () => expect((await db.query(`select "email" from "notification"."recipient" where "user_id" = $1`, [userId])).rows[0]?.email).toBe(email), { timeout: 10_000, interval: 25 });
    const upgraded = createEnvelope(
      { type: 'subscription.upgraded', userId, payload: { userId, membershipVersion: 2, fromTier: 'FREE', toTier: 'SILVER', invoiceId: randomUUID(), amountCents: 900, currency: 'USD', entitlements: { tier: 'SILVER' } } },
      { serviceName: 'billing' },
    );
    await stack.transport.publish(upgraded);
    const mail = await emailTo(email);
    expect(mail.subject).toContain('Silver');
    // The welcome of 2020 was never sent.
    expect(emailsTo(email)).toHaveLength(1);
    expect((await db.query(`select "template_key" from "notification"."delivery" where "user_id" = $1`, [userId])).rows.map((r) => r.template_key)).toEqual(['subscription.upgraded']);
  });
});

describe('the event catalog', () => {
  it('lists every event notification published above, with exactly its payload fields', () => {
    const catalog = JSON.parse(readFileSync(new URL('../schema/events/catalog.json', import.meta.url), 'utf8'));
    const published = events.received.filter((e) => e.serviceName === 'notification');
    const types = new Set(published.map((e) => e.type));
    for (const type of ['notification.requested', 'notification.sent', 'notification.delivered', 'notification.opened', 'notification.clicked', 'notification.bounced', 'preference.changed']) {
      expect(types).toContain(type);
    }
    for (const event of published) {
      expect(catalog[event.type]?.publisher).toBe('notification');
      expect(Object.keys(event.payload).sort()).toEqual(Object.keys(catalog[event.type].payload).sort());
      // No address and no message text in the stream: the event log is read by admins.
      expect(JSON.stringify(event.payload)).not.toMatch(/@example\.com|\+1555/);
    }
  });
});
