import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSendGridFake, type SendGridFake } from '../../../test/fakes/sendgrid.js';
import { DeliveryError, type OutgoingEmail } from './channel.js';
import { createSendGridSender, type SendGridSenderOptions } from './sendgrid.js';

const email = (overrides: Partial<OutgoingEmail> = {}): OutgoingEmail => ({
  deliveryId: randomUUID(),
  to: 'ann@example.org',
  subject: 'Your story has a new chapter',
  text: 'Bob wrote chapter 3.',
  html: '<p>Bob wrote <b>chapter 3</b>.</p>',
  ...overrides,
});

describe('SendGrid on the wire', () => {
  let fake: SendGridFake;
  const signal = new AbortController().signal;
  const sender = (overrides: Partial<SendGridSenderOptions> = {}) =>
    createSendGridSender({ apiKey: fake.apiKey, from: 'Storyloom <hello@storyloom.app>', baseUrl: fake.url, timeoutMs: 5_000, ...overrides });

  beforeAll(async () => {
    fake = await startSendGridFake();
  });
  afterAll(() => fake.close());

  it('posts /v3/mail/send with the key, the message and custom_args.deliveryId, and returns X-Message-Id', async () => {
    const message = email();
    const result = await sender().send(message, { signal });
    const request = fake.requests.at(-1)!;
    expect(request).toMatchObject({ method: 'POST', path: '/v3/mail/send' });
    expect(request.headers.authorization).toBe(`Bearer ${fake.apiKey}`);
    expect(request.headers['content-type']).toMatch(/^application\/json/);
    expect(request.body).toEqual({
      personalizations: [{ to: [{ email: 'ann@example.org' }] }],
      from: { email: 'hello@storyloom.app', name: 'Storyloom' },
      subject: 'Your story has a new chapter',
      content: [
        { type: 'text/plain', value: 'Bob wrote chapter 3.' },
        { type: 'text/html', value: '<p>Bob wrote <b>chapter 3</b>.</p>' },
      ],
      custom_args: { deliveryId: message.deliveryId },
    });
    const accepted = fake.messages.at(-1)!;
    expect(result).toEqual({ provider: 'sendgrid', providerMessageId: accepted.id });
    expect(accepted).toMatchObject({ to: ['ann@example.org'], customArgs: { deliveryId: message.deliveryId } });
  });

  it('sends a text-only message as one text/plain block', async () => {
    await sender({ from: 'hello@storyloom.app' }).send(email({ html: undefined }), { signal });
    expect(fake.requests.at(-1)!.body).toMatchObject({ from: { email: 'hello@storyloom.app' }, content: [{ type: 'text/plain', value: 'Bob wrote chapter 3.' }] });
  });

  it('passes on what SendGrid says of a message it refuses', async () => {
    const error = await sender().send(email({ to: 'not-an-address' }), { signal }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeliveryError);
    expect(error).toMatchObject({ reason: 'REJECTED', message: 'SendGrid refused the message (400): Does not contain a valid address. (personalizations.0.to.0.email)' });
  });

  it('reads X-RateLimit-Reset when a 429 has no Retry-After', async () => {
    fake.failNext(429);
    const error = (await sender().send(email(), { signal }).catch((e: unknown) => e)) as DeliveryError;
    expect(error.reason).toBe('RATE_LIMITED');
    // The fake resets its window 60 s on.
    expect(error.retryAfterMs).toBeGreaterThan(55_000);
    expect(error.retryAfterMs).toBeLessThanOrEqual(60_000);
  });

  it('keeps two senders apart: each its own key and host, and one send\'s abort is not another\'s', async () => {
    const other = await startSendGridFake();
    try {
      const [a, b] = [sender(), createSendGridSender({ apiKey: other.apiKey, from: 'hello@storyloom.app', baseUrl: other.url, timeoutMs: 5_000 })];
      const before = { fake: fake.messages.length, other: other.messages.length };
      await Promise.all([a.send(email({ subject: 'to the first' }), { signal }), b.send(email({ subject: 'to the second' }), { signal })]);
      expect(fake.messages.slice(before.fake).map((m) => m.subject)).toEqual(['to the first']);
      expect(other.messages.slice(before.other).map((m) => m.subject)).toEqual(['to the second']);

      const controller = new AbortController();
      const reason = new Error('this one is cancelled');
      const cancelled = a.send(email(), { signal: controller.signal });
      const kept = a.send(email({ subject: 'still goes' }), { signal });
      controller.abort(reason);
      await expect(cancelled).rejects.toBe(reason);
      await expect(kept).resolves.toMatchObject({ provider: 'sendgrid' });
      expect(fake.messages.at(-1)!.subject).toBe('still goes');
    } finally {
      await other.close();
    }
  });

  it('refuses a configuration it cannot work with', () => {
    expect(() => sender({ apiKey: '' })).toThrow(RangeError);
    expect(() => sender({ apiKey: 'not-a-sendgrid-key' })).toThrow(/SG\./);
    expect(() => sender({ timeoutMs: 0 })).toThrow(RangeError);
    expect(() => sender({ from: ' ' })).toThrow(RangeError);
  });
});
