/**
 * The compositions over the real adapters and their fakes: what reaches the wire when a
 * provider fails, and how many times.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startMailgunFake, type MailgunFake } from '../../../test/fakes/mailgun.js';
import { startSendGridFake, type SendGridFake } from '../../../test/fakes/sendgrid.js';
import { DeliveryError, type EmailSender, type OutgoingEmail } from './channel.js';
import { createMailgunSender } from './mailgun.js';
import { withFallback, withRetries, type RetryPolicy } from './resilience.js';
import { createSendGridSender } from './sendgrid.js';

const policy: RetryPolicy = { maxRetries: 3, baseDelayMs: 1, maxDelayMs: 5 };
const email = (overrides: Partial<OutgoingEmail> = {}): OutgoingEmail => ({ deliveryId: randomUUID(), to: 'ann@example.org', subject: 'Hello', text: 'Hello, Ann.', ...overrides });

describe('retries and fallback over SendGrid and Mailgun', () => {
  let sendgridFake: SendGridFake;
  let mailgunFake: MailgunFake;
  let sendgrid: EmailSender;
  let mailgun: EmailSender;
  const signal = new AbortController().signal;
  /** Requests each fake has had since the test began. */
  let seen: () => { sendgrid: number; sendgridDropped: number; mailgun: number; sendgridMessages: number; mailgunMessages: number };

  beforeAll(async () => {
    [sendgridFake, mailgunFake] = await Promise.all([startSendGridFake(), startMailgunFake()]);
    sendgrid = createSendGridSender({ apiKey: sendgridFake.apiKey, from: 'hello@storyloom.app', baseUrl: sendgridFake.url, timeoutMs: 300 });
    mailgun = createMailgunSender({ apiKey: mailgunFake.apiKey, domain: mailgunFake.domain, from: `hello@${mailgunFake.domain}`, baseUrl: mailgunFake.url, timeoutMs: 2_000 });
  });
  afterAll(() => Promise.all([sendgridFake.close(), mailgunFake.close()]));
  beforeEach(() => {
    sendgridFake.up();
    mailgunFake.up();
    const start = { sg: sendgridFake.requests.length, drop: sendgridFake.dropped, mg: mailgunFake.requests.length, sgm: sendgridFake.messages.length, mgm: mailgunFake.messages.length };
    seen = () => ({
      sendgrid: sendgridFake.requests.length - start.sg,
      sendgridDropped: sendgridFake.dropped - start.drop,
      mailgun: mailgunFake.requests.length - start.mg,
      sendgridMessages: sendgridFake.messages.length - start.sgm,
      mailgunMessages: mailgunFake.messages.length - start.mgm,
    });
  });
  const chain = () => withFallback([withRetries(sendgrid, policy), withRetries(mailgun, policy)]);

  it('delivers once through a provider that answers 500 twice, then 202: exactly three calls', async () => {
    sendgridFake.failNext(500, 2);
    const message = email();
    const result = await withRetries(sendgrid, policy).send(message, { signal });
    expect(seen()).toMatchObject({ sendgrid: 3, sendgridMessages: 1 });
    expect(sendgridFake.messages.at(-1)).toMatchObject({ id: result.providerMessageId, customArgs: { deliveryId: message.deliveryId } });
  });

  it('does the same through Mailgun', async () => {
    mailgunFake.failNext(503, 2);
    const result = await withRetries(mailgun, policy).send(email(), { signal });
    expect(seen()).toMatchObject({ mailgun: 3, mailgunMessages: 1 });
    expect(result.provider).toBe('mailgun');
  });

  it('falls back to Mailgun when SendGrid is down entirely, after SendGrid\'s retries', async () => {
    sendgridFake.down();
    const message = email();
    const result = await chain().send(message, { signal });
    expect(result.provider).toBe('mailgun');
    expect(seen()).toMatchObject({ sendgridDropped: policy.maxRetries + 1, sendgridMessages: 0, mailgun: 1, mailgunMessages: 1 });
    expect(mailgunFake.messages.at(-1)!.variables).toEqual({ deliveryId: message.deliveryId });
  });

  it('neither retries nor falls back when SendGrid rejects the message', async () => {
    sendgridFake.failNext(400, 1, { message: 'The from address does not match a verified Sender Identity.' });
    const error = await chain().send(email(), { signal }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeliveryError);
    expect(error).toMatchObject({ reason: 'REJECTED', message: expect.stringContaining('verified Sender Identity') });
    expect(seen()).toMatchObject({ sendgrid: 1, mailgun: 0 });
  });

  it('falls back without retrying when SendGrid refuses the key or does not answer in time', async () => {
    sendgridFake.failNext(401);
    await expect(chain().send(email(), { signal })).resolves.toMatchObject({ provider: 'mailgun' });
    expect(seen()).toMatchObject({ sendgrid: 1, mailgun: 1 });

    sendgridFake.stall();
    await expect(chain().send(email(), { signal })).resolves.toMatchObject({ provider: 'mailgun' });
    // One timed-out attempt only: SendGrid may have taken it, and a retry could deliver it twice.
    expect(seen()).toMatchObject({ sendgrid: 2, mailgun: 2 });
  });

  it('reports every provider when all fail', async () => {
    sendgridFake.failNext(503, policy.maxRetries + 1);
    mailgunFake.failNext(500, policy.maxRetries + 1);
    const error = await chain().send(email(), { signal }).catch((e: unknown) => e);
    expect(error).toMatchObject({ reason: 'TRANSIENT', message: expect.stringMatching(/^Every provider failed \(sendgrid: SendGrid answered 503.*\(4 attempts\); mailgun: Mailgun answered 500.*\(4 attempts\)\)$/) });
    expect(seen()).toMatchObject({ sendgrid: 4, mailgun: 4, sendgridMessages: 0, mailgunMessages: 0 });
  });
});
