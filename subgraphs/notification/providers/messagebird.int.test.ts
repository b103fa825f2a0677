import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { messageBirdErrors, startMessageBirdFake, type MessageBirdFake } from '../../../test/fakes/messagebird.js';
import { DeliveryError, type OutgoingSms } from './channel.js';
import { createMessageBirdSender, type MessageBirdSenderOptions } from './messagebird.js';

const signal = new AbortController().signal;

describe('MessageBird SMS sender against the fake', () => {
  let fake: MessageBirdFake;
  beforeAll(async () => {
    fake = await startMessageBirdFake();
  });
  afterAll(() => fake.close());
  afterEach(() => fake.up());

  const sender = (overrides: Partial<MessageBirdSenderOptions> = {}) =>
    createMessageBirdSender({ accessKey: fake.accessKey, originator: 'Storyloom', baseUrl: fake.url, timeoutMs: 2_000, ...overrides });
  const sms = (overrides: Partial<OutgoingSms> = {}): OutgoingSms => ({ deliveryId: randomUUID(), to: '+31612345678', body: 'Your story "Night Train" is ready to read', ...overrides });
  /** What a failed send threw, with the promise that the key is nowhere in it. */
  const failure = async (send: Promise<unknown>): Promise<DeliveryError> => {
    const error = await send.then(
      () => expect.unreachable('the send succeeded'),
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DeliveryError);
    expect((error as DeliveryError).message).not.toContain(fake.accessKey);
    return error as DeliveryError;
  };

  it('posts the message as JSON to /messages with the access key and our delivery id as reference, and answers the id', async () => {
    const message = sms({ statusCallbackUrl: 'https://hooks.example.test/webhooks/messagebird/status' });
    const result = await sender().send(message, { signal });

    const request = fake.requests.at(-1)!;
    expect(request).toMatchObject({ method: 'POST', path: '/messages' });
    expect(request.headers.authorization).toBe(`AccessKey ${fake.accessKey}`);
    expect(request.headers['content-type']).toMatch(/^application\/json/);
    expect(JSON.parse(request.rawBody)).toEqual({
      originator: 'Storyloom',
      recipients: ['31612345678'],
      body: message.body,
      reference: message.deliveryId,
    });
    const sent = fake.messages.at(-1)!;
    expect(sent.id).toMatch(/^[0-9a-f]{32}$/);
    expect(result).toEqual({ provider: 'messagebird', providerMessageId: sent.id });
  });

  it('sends no reportUrl, also when the message carries a (Twilio) status callback', async () => {
    await sender().send(sms({ statusCallbackUrl: 'https://hooks.example.test/webhooks/notification/twilio/status?deliveryId=x' }), { signal });
    expect(JSON.parse(fake.requests.at(-1)!.rawBody)).not.toHaveProperty('reportUrl');
  });

  it('reports a 500 as TRANSIENT, with what MessageBird said', async () => {
    fake.failNext(500);
    const error = await failure(sender().send(sms(), { signal }));
    expect(error.reason).toBe('TRANSIENT');
    expect(error.message).toBe('MessageBird answered 500: Internal error (code 99)');
  });

  it('reports a 429 as RATE_LIMITED, with Retry-After when given', async () => {
    fake.failNext(429, 1, undefined, { 'retry-after': '2' });
    expect(await failure(sender().send(sms(), { signal }))).toMatchObject({ reason: 'RATE_LIMITED', retryAfterMs: 2_000 });
  });

  it('reports a refused access key (401) as AUTH', async () => {
    const sent = fake.messages.length;
    const wrongKey = `test_${randomUUID()}`;
    const error = await failure(sender({ accessKey: wrongKey }).send(sms(), { signal }));
    expect(error.reason).toBe('AUTH');
    expect(error.message).toContain('Request not allowed (incorrect access_key)');
    expect(error.message).not.toContain(wrongKey);
    expect(fake.messages.length).toBe(sent);
  });

  it('reports a refused message (400, 422) as REJECTED with MessageBird\'s description', async () => {
    fake.failNext(400, 1, messageBirdErrors({ code: 10, description: 'recipient is not a valid msisdn', parameter: 'recipients' }));
    const error = await failure(sender().send(sms(), { signal }));
    expect(error.reason).toBe('REJECTED');
    expect(error.message).toBe('MessageBird refused the message (400): recipient is not a valid msisdn (code 10, parameter recipients)');

    const invalid = await failure(sender().send(sms({ to: '+12' }), { signal }));
    expect(invalid.reason).toBe('REJECTED');
    expect(invalid.message).toContain('(422): no (correct) recipients found (code 9, parameter recipients)');
  });

  it('keeps the access key out of the message even when MessageBird echoes it', async () => {
    fake.failNext(401, 1, messageBirdErrors({ code: 2, description: `Key ${fake.accessKey} is not allowed here` }));
    const error = await failure(sender().send(sms(), { signal }));
    expect(error.message).toContain('Key [redacted] is not allowed here');
  });

  it('reports an out-of-balance account (402) as AUTH: another provider may still send it', async () => {
    fake.failNext(402);
    expect((await failure(sender().send(sms(), { signal }))).reason).toBe('AUTH');
  });

  it('reports a lost connection as TRANSIENT', async () => {
    fake.down();
    const error = await failure(sender().send(sms(), { signal }));
    expect(error.reason).toBe('TRANSIENT');
    expect(error.message).toMatch(/^Could not reach MessageBird/);
  });

  it('gives up on a stalled MessageBird as TIMEOUT within timeoutMs', async () => {
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
    controller.abort(reason);
    await expect(sending).rejects.toBe(reason);
    await expect(sender().send(sms(), { signal: controller.signal })).rejects.toBe(reason);
  });

  it('refuses bad settings when built', () => {
    const base = { accessKey: 'key', originator: 'Storyloom', timeoutMs: 1_000 };
    expect(() => createMessageBirdSender({ ...base, accessKey: '' })).toThrow(/accessKey/);
    expect(() => createMessageBirdSender({ ...base, originator: 'StoryloomDaily' })).toThrow(/originator/);
    expect(() => createMessageBirdSender({ ...base, timeoutMs: 1.5 })).toThrow(/timeoutMs/);
    expect(() => createMessageBirdSender({ ...base, baseUrl: 'not a url' })).toThrow(/baseUrl/);
  });
});
