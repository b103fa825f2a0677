import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTwilioFake, twilioError, type TwilioFake } from '../../../test/fakes/twilio.js';
import { DeliveryError, type OutgoingSms } from './channel.js';
import { createTwilioSender, type TwilioSenderOptions } from './twilio.js';

const FROM = '+15005550006';
const signal = new AbortController().signal;

describe('Twilio SMS sender against the fake', () => {
  let fake: TwilioFake;
  beforeAll(async () => {
    fake = await startTwilioFake();
  });
  afterAll(() => fake.close());
  afterEach(() => fake.up());

  const sender = (overrides: Partial<TwilioSenderOptions> = {}) =>
    createTwilioSender({ accountSid: fake.accountSid, authToken: fake.authToken, from: FROM, baseUrl: fake.url, timeoutMs: 2_000, ...overrides });
  const sms = (overrides: Partial<OutgoingSms> = {}): OutgoingSms => ({
    deliveryId: randomUUID(),
    to: '+14155550123',
    body: 'Your story "Night Train" is ready to read',
    statusCallbackUrl: 'https://hooks.example.test/webhooks/twilio/status?d=1',
    ...overrides,
  });
  /** What a failed send threw, with the promise that the token is nowhere in it. */
  const failure = async (send: Promise<unknown>): Promise<DeliveryError> => {
    const error = await send.then(
      () => expect.unreachable('the send succeeded'),
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DeliveryError);
    const { message } = error as DeliveryError;
    expect(message).not.toContain(fake.authToken);
    expect(message).not.toContain(Buffer.from(`${fake.accountSid}:${fake.authToken}`).toString('base64'));
    return error as DeliveryError;
  };

  it('posts To, From, Body and StatusCallback as a form to Messages.json with Basic auth, and answers the sid', async () => {
    const message = sms();
    const result = await sender().send(message, { signal });

    const request = fake.requests.at(-1)!;
    expect(request.method).toBe('POST');
    expect(request.path).toBe(`/2010-04-01/Accounts/${fake.accountSid}/Messages.json`);
    expect(request.headers.authorization).toBe(`Basic ${Buffer.from(`${fake.accountSid}:${fake.authToken}`).toString('base64')}`);
    expect(request.headers['content-type']).toMatch(/^application\/x-www-form-urlencoded/);
    expect(Object.fromEntries(new URLSearchParams(request.rawBody))).toEqual({ To: message.to, From: FROM, Body: message.body, StatusCallback: message.statusCallbackUrl });

    const sent = fake.messages.at(-1)!;
    expect(sent.sid).toMatch(/^SM[0-9a-f]{32}$/);
    expect(result).toEqual({ provider: 'twilio', providerMessageId: sent.sid });
  });

  it('sends MessagingServiceSid instead of From, and no StatusCallback when the message has none', async () => {
    const messagingServiceSid = `MG${'a'.repeat(32)}`;
    const result = await sender({ from: undefined, messagingServiceSid }).send(sms({ statusCallbackUrl: undefined }), { signal });
    const form = Object.fromEntries(new URLSearchParams(fake.requests.at(-1)!.rawBody));
    expect(form).toEqual({ To: '+14155550123', MessagingServiceSid: messagingServiceSid, Body: expect.any(String) });
    expect(result.providerMessageId).toBe(fake.messages.at(-1)!.sid);
  });

  it('reports a 500 as TRANSIENT, with what Twilio said', async () => {
    fake.failNext(500);
    const error = await failure(sender().send(sms(), { signal }));
    expect(error.reason).toBe('TRANSIENT');
    expect(error.message).toContain('An internal server error has occurred');
    expect(error.message).toContain('500');
  });

  it('reports a 429 as RATE_LIMITED, with Retry-After when Twilio gives one', async () => {
    fake.failNext(429, 1, undefined, { 'retry-after': '7' });
    const error = await failure(sender().send(sms(), { signal }));
    expect(error).toMatchObject({ reason: 'RATE_LIMITED', retryAfterMs: 7_000 });
    expect(error.message).toContain('code 20429');
    fake.failNext(429);
    expect(await failure(sender().send(sms(), { signal }))).toMatchObject({ reason: 'RATE_LIMITED', retryAfterMs: undefined });
  });

  it('reports refused credentials (401, code 20003) as AUTH', async () => {
    const sent = fake.messages.length;
    const error = await failure(sender({ authToken: 'f'.repeat(32) }).send(sms(), { signal }));
    expect(error.reason).toBe('AUTH');
    expect(error.message).toContain('(401): Authenticate (code 20003)');
    expect(error.message).not.toContain('f'.repeat(32));
    expect(fake.messages.length).toBe(sent);
  });

  it('reports an invalid To (400, code 21211) as REJECTED with Twilio\'s message', async () => {
    const error = await failure(sender().send(sms({ to: '555-0123' }), { signal }));
    expect(error.reason).toBe('REJECTED');
    expect(error.message).toBe("Twilio refused the message (400): The 'To' number 555-0123 is not a valid phone number. (code 21211)");
  });

  it('reports a From the account does not own (400, code 21606) as AUTH: another provider may still send it', async () => {
    fake.failNext(400, 1, twilioError(400, 21606, "The 'From' phone number provided (+15005550001) is not a valid message-capable Twilio phone number for this destination."));
    const error = await failure(sender().send(sms(), { signal }));
    expect(error.reason).toBe('AUTH');
    expect(error.message).toContain('21606');
  });

  it('keeps the auth token out of the message even when Twilio echoes it', async () => {
    fake.failNext(400, 1, twilioError(400, 21620, `Invalid media URL https://${fake.accountSid}:${fake.authToken}@example.test/x`));
    const error = await failure(sender().send(sms(), { signal }));
    expect(error.reason).toBe('REJECTED');
    expect(error.message).toContain('[redacted]');
  });

  it('reports a proxy\'s HTML error page by its status', async () => {
    fake.failNext(502, 1, '<html>Bad Gateway</html>');
    expect((await failure(sender().send(sms(), { signal }))).reason).toBe('TRANSIENT');
  });

  it('reports a lost connection as TRANSIENT', async () => {
    fake.down();
    const error = await failure(sender().send(sms(), { signal }));
    expect(error.reason).toBe('TRANSIENT');
    expect(error.message).toMatch(/^Could not reach Twilio/);
  });

  it('gives up on a stalled Twilio as TIMEOUT within timeoutMs', async () => {
    fake.stall();
    const started = performance.now();
    const error = await failure(sender({ timeoutMs: 300 }).send(sms(), { signal }));
    const elapsed = performance.now() - started;
    expect(error.reason).toBe('TIMEOUT');
    expect(error.message).toContain('300 ms');
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(1_500);
  });

  it('surfaces the caller\'s abort itself, at once', async () => {
    fake.stall();
    const controller = new AbortController();
    const reason = new Error('shutting down');
    const before = fake.requests.length;
    const sending = sender({ timeoutMs: 30_000 }).send(sms(), { signal: controller.signal });
    await vi.waitFor(() => expect(fake.requests.length).toBe(before + 1), { timeout: 5_000, interval: 10 });
    const started = performance.now();
    controller.abort(reason);
    await expect(sending).rejects.toBe(reason);
    expect(performance.now() - started).toBeLessThan(1_000);
    await expect(sender().send(sms(), { signal: controller.signal })).rejects.toBe(reason);
  });

  it('refuses bad settings when built', () => {
    const base = { accountSid: `AC${'0'.repeat(32)}`, authToken: 'token', from: FROM, timeoutMs: 1_000 };
    expect(() => createTwilioSender({ ...base, accountSid: 'SK123' })).toThrow(/accountSid/);
    expect(() => createTwilioSender({ ...base, authToken: '' })).toThrow(/authToken/);
    expect(() => createTwilioSender({ ...base, messagingServiceSid: `MG${'0'.repeat(32)}` })).toThrow(/exactly one/);
    expect(() => createTwilioSender({ ...base, from: undefined })).toThrow(/exactly one/);
    expect(() => createTwilioSender({ ...base, timeoutMs: 0 })).toThrow(/timeoutMs/);
    expect(() => createTwilioSender({ ...base, baseUrl: 'ftp://x' })).toThrow(/baseUrl/);
  });
});
