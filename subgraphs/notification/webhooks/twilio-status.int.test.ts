import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTwilioFake, twilioSignature, type TwilioFake } from '../../../test/fakes/twilio.js';
import { createTwilioSender } from '../providers/twilio.js';
import { WebhookRefused } from './refused.js';
import { verifyTwilioStatusCallback, type TwilioStatusUpdate } from './twilio-status.js';

/**
 * The round trip: a message sent through the adapter with a StatusCallback, and the callbacks
 * the Twilio fake posts for it, received by a bare HTTP endpoint that verifies them.
 */
describe('Twilio status callbacks, posted by the fake', () => {
  let fake: TwilioFake;
  let receiver: Server;
  let origin: string;
  const received: TwilioStatusUpdate[] = [];

  beforeAll(async () => {
    fake = await startTwilioFake();
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        try {
          // Behind a proxy this would be the public URL Twilio was given, not the one forwarded to.
          const url = `${origin}${req.url}`;
          const params = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
          const signature = req.headers['x-twilio-signature'];
          received.push(verifyTwilioStatusCallback({ authToken: fake.authToken, signature: typeof signature === 'string' ? signature : undefined, url, params }));
          res.writeHead(204).end();
        } catch (error) {
          res.writeHead(error instanceof WebhookRefused ? 403 : 500).end();
        }
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await fake.close();
    await new Promise<void>((resolve) => receiver.close(() => resolve()));
  });

  it('verifies the callbacks for a message sent with a StatusCallback, and refuses a forged one', async () => {
    const deliveryId = randomUUID();
    const statusCallbackUrl = `${origin}/webhooks/twilio/status?delivery=${deliveryId}`;
    const sender = createTwilioSender({ accountSid: fake.accountSid, authToken: fake.authToken, from: '+15005550006', baseUrl: fake.url, timeoutMs: 2_000 });
    const { providerMessageId: sid } = await sender.send({ deliveryId, to: '+14155550123', body: 'Hello', statusCallbackUrl }, { signal: new AbortController().signal });

    expect((await fake.postStatusCallback(sid, 'sent')).status).toBe(204);
    expect((await fake.postStatusCallback(sid, 'undelivered', undefined, { errorCode: '30005' })).status).toBe(204);
    expect(received).toEqual([
      { messageSid: sid, status: 'sent' },
      { messageSid: sid, status: 'undelivered', errorCode: '30005' },
    ]);

    // The fake's signature is the documented HMAC, over the URL the message named.
    const callback = fake.statusCallback(sid, 'delivered');
    expect(callback.url).toBe(statusCallbackUrl);
    expect(callback.params).toMatchObject({ MessageSid: sid, MessageStatus: 'delivered', AccountSid: fake.accountSid, To: '+14155550123', From: '+15005550006' });
    expect(callback.signature).toBe(twilioSignature(fake.authToken, statusCallbackUrl, callback.params));

    // Someone who knows the sid but not the token.
    const forged = await fetch(statusCallbackUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': twilioSignature('not-the-token', statusCallbackUrl, callback.params) },
      body: callback.body,
    });
    expect(forged.status).toBe(403);
    const unsigned = await fetch(statusCallbackUrl, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: callback.body });
    expect(unsigned.status).toBe(403);
    expect(received).toHaveLength(2);
  });
});
