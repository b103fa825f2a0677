import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMailgunFake, type MailgunFake } from '../../../test/fakes/mailgun.js';
import { DeliveryError, type OutgoingEmail } from './channel.js';
import { createMailgunSender, type MailgunSenderOptions } from './mailgun.js';

const email = (overrides: Partial<OutgoingEmail> = {}): OutgoingEmail => ({
  deliveryId: randomUUID(),
  to: 'ann@example.org',
  subject: 'Your story has a new chapter',
  text: 'Bob wrote chapter 3.',
  html: '<p>Bob wrote <b>chapter 3</b>.</p>',
  ...overrides,
});

describe('Mailgun on the wire', () => {
  let fake: MailgunFake;
  const signal = new AbortController().signal;
  const sender = (overrides: Partial<MailgunSenderOptions> = {}) =>
    createMailgunSender({ apiKey: fake.apiKey, domain: fake.domain, from: `Storyloom <hello@${fake.domain}>`, baseUrl: fake.url, timeoutMs: 5_000, ...overrides });

  beforeAll(async () => {
    fake = await startMailgunFake();
  });
  afterAll(() => fake.close());

  it('posts a form to /v3/{domain}/messages with Basic api:key and v:deliveryId, and returns the id without brackets', async () => {
    const message = email();
    const result = await sender().send(message, { signal });
    const request = fake.requests.at(-1)!;
    expect(request).toMatchObject({ method: 'POST', path: `/v3/${fake.domain}/messages` });
    expect(request.headers.authorization).toBe(`Basic ${Buffer.from(`api:${fake.apiKey}`).toString('base64')}`);
    expect(request.headers['content-type']).toMatch(/^multipart\/form-data; boundary=/);
    expect(request.body).toEqual({
      from: [`Storyloom <hello@${fake.domain}>`],
      to: ['ann@example.org'],
      subject: ['Your story has a new chapter'],
      text: ['Bob wrote chapter 3.'],
      html: ['<p>Bob wrote <b>chapter 3</b>.</p>'],
      'v:deliveryId': [message.deliveryId],
    });
    const accepted = fake.messages.at(-1)!;
    expect(accepted.id).toMatch(/^<.+@.+>$/);
    expect(result).toEqual({ provider: 'mailgun', providerMessageId: accepted.id.slice(1, -1) });
    expect(accepted.variables).toEqual({ deliveryId: message.deliveryId });
  });

  it('sends a text-only message without an html field', async () => {
    await sender().send(email({ html: undefined }), { signal });
    expect(Object.keys(fake.requests.at(-1)!.body as object).sort()).toEqual(['from', 'subject', 'text', 'to', 'v:deliveryId']);
  });

  it('passes on what Mailgun says of a message it refuses', async () => {
    const error = await sender().send(email({ to: 'not-an-address' }), { signal }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeliveryError);
    expect(error).toMatchObject({ reason: 'REJECTED', message: "Mailgun refused the message (400): 'to' parameter is not a valid address. please check documentation" });
  });

  it('takes an unknown sending domain for our configuration (AUTH: another provider may still send), not the message\'s fault', async () => {
    const error = await sender({ domain: 'mg.unknown.test' }).send(email(), { signal }).catch((e: unknown) => e);
    expect(error).toMatchObject({ reason: 'AUTH', message: expect.stringContaining('Domain not found: mg.unknown.test') });
  });

  it('refuses a configuration it cannot work with', () => {
    expect(() => sender({ apiKey: '' })).toThrow(RangeError);
    expect(() => sender({ domain: '' })).toThrow(RangeError);
    expect(() => sender({ timeoutMs: 1.5 })).toThrow(RangeError);
  });
});
