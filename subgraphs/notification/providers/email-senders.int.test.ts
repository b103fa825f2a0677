/**
 * What every remote email adapter promises about failures, run against each one's fake: how
 * each HTTP answer (or the lack of one) maps to a DeliveryFailure, within the deadline, and that
 * no message ever carries the key.
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { startMailgunFake } from '../../../test/fakes/mailgun.js';
import { startSendGridFake } from '../../../test/fakes/sendgrid.js';
import { DeliveryError, type EmailSender, type OutgoingEmail } from './channel.js';
import { createMailgunSender } from './mailgun.js';
import { createSendGridSender } from './sendgrid.js';

/** What both fakes offer. */
interface EmailFake {
  readonly url: string;
  readonly apiKey: string;
  readonly requests: readonly unknown[];
  readonly messages: readonly unknown[];
  failNext(status: number, times?: number, options?: { retryAfterSeconds?: number; message?: string }): void;
  down(): void;
  up(): void;
  stall(): void;
  close(): Promise<void>;
}

interface Settings {
  apiKey: string;
  baseUrl: string;
  timeoutMs: number;
}

interface Case {
  name: string;
  start(): Promise<EmailFake>;
  sender(fake: EmailFake, settings: Settings): EmailSender;
  /** A key the fake refuses, in the provider's format. */
  wrongKey(): string;
  /** Whether a 429's Retry-After reaches the error (mailgun.js drops response headers). */
  keepsRetryAfter: boolean;
}

const FROM = 'Storyloom <hello@mg.storyloom.test>';
let mailgunDomain = '';

const cases: Case[] = [
  {
    name: 'SendGrid',
    start: () => startSendGridFake(),
    sender: (_fake, settings) => createSendGridSender({ ...settings, from: FROM }),
    wrongKey: () => `SG.wrong-${randomUUID()}`,
    keepsRetryAfter: true,
  },
  {
    name: 'Mailgun',
    start: async () => {
      const fake = await startMailgunFake();
      mailgunDomain = fake.domain;
      return fake;
    },
    sender: (_fake, settings) => createMailgunSender({ ...settings, domain: mailgunDomain, from: FROM }),
    wrongKey: () => `key-wrong-${randomUUID()}`,
    keepsRetryAfter: false,
  },
];

const email = (): OutgoingEmail => ({ deliveryId: randomUUID(), to: 'ann@example.org', subject: 'Hello', text: 'Hello, Ann.' });

describe.each(cases)('$name failures', (spec) => {
  let fake: EmailFake;
  const signal = new AbortController().signal;
  const sender = (settings: Partial<Settings> = {}) => spec.sender(fake, { apiKey: fake.apiKey, baseUrl: fake.url, timeoutMs: 5_000, ...settings });
  /** The error of one send, which must be a DeliveryError whose message holds no key. */
  const failureOf = async (send: Promise<unknown>, key = fake.apiKey): Promise<DeliveryError> => {
    const error = await send.then(
      () => expect.fail('the send should have failed'),
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DeliveryError);
    const { message } = error as DeliveryError;
    expect(message).not.toContain(key);
    expect(message).not.toContain(Buffer.from(`api:${key}`).toString('base64'));
    return error as DeliveryError;
  };

  beforeAll(async () => {
    fake = await spec.start();
  });
  afterAll(() => fake.close());
  beforeEach(() => fake.up());

  it.each([500, 502, 503])('%i is TRANSIENT', async (status) => {
    fake.failNext(status);
    const error = await failureOf(sender().send(email(), { signal }));
    expect(error.reason).toBe('TRANSIENT');
    expect(error.message).toContain(String(status));
  });

  it('429 is RATE_LIMITED, with Retry-After when the SDK lets it through', async () => {
    fake.failNext(429, 1, { retryAfterSeconds: 7 });
    const error = await failureOf(sender().send(email(), { signal }));
    expect(error.reason).toBe('RATE_LIMITED');
    expect(error.retryAfterMs).toBe(spec.keepsRetryAfter ? 7_000 : undefined);
  });

  it('a wrong key is AUTH, and the key stays out of the message though the provider repeated it', async () => {
    const wrongKey = spec.wrongKey();
    const requests = fake.requests.length;
    const error = await failureOf(sender({ apiKey: wrongKey }).send(email(), { signal }), wrongKey);
    expect(error.reason).toBe('AUTH');
    expect(error.message).toContain('401');
    expect(error.message).toContain('[redacted]');
    expect(fake.requests.length).toBe(requests + 1);
  });

  it.each([401, 403])('%i is AUTH', async (status) => {
    fake.failNext(status);
    expect((await failureOf(sender().send(email(), { signal }))).reason).toBe('AUTH');
  });

  it.each([400, 413])('%i is REJECTED, with the provider\'s message', async (status) => {
    fake.failNext(status, 1, { message: 'The message is not acceptable' });
    const error = await failureOf(sender().send(email(), { signal }));
    expect(error.reason).toBe('REJECTED');
    expect(error.message).toContain('The message is not acceptable');
  });

  it('a cut connection is TRANSIENT', async () => {
    fake.down();
    expect((await failureOf(sender().send(email(), { signal }))).reason).toBe('TRANSIENT');
  });

  it('a host nobody listens on is TRANSIENT', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    expect((await failureOf(sender({ baseUrl: `http://127.0.0.1:${port}/` }).send(email(), { signal }))).reason).toBe('TRANSIENT');
  });

  it('no answer is TIMEOUT, within timeoutMs', async () => {
    fake.stall();
    const started = performance.now();
    const error = await failureOf(sender({ timeoutMs: 300 }).send(email(), { signal }));
    const elapsed = performance.now() - started;
    expect(error.reason).toBe('TIMEOUT');
    expect(error.message).toContain('300 ms');
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(1_500);
  });

  it('an abort ends the send at once with the abort\'s reason', async () => {
    fake.stall();
    const controller = new AbortController();
    const reason = new Error('shutting down');
    const stalled = fake.requests.length;
    const send = sender({ timeoutMs: 30_000 }).send(email(), { signal: controller.signal });
    // Abort once the request is at the fake, so it is the wait that ends, not the start.
    await vi.waitFor(() => expect(fake.requests.length).toBe(stalled + 1), { timeout: 5_000, interval: 10 });
    const started = performance.now();
    controller.abort(reason);
    await expect(send).rejects.toBe(reason);
    expect(performance.now() - started).toBeLessThan(500);
  });
});
