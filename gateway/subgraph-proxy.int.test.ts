import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { closeServer, createHttpServer, listen } from '../platform/http/server.js';
import { createLogger } from '../platform/log.js';
import { mediaProxy, webhookProxy } from './media-proxy.js';

const LIMIT = 1024;
const logger = createLogger('silent');

/** What the stand-in subgraph got: a request it saw to the end, or one cut off mid-body. */
interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  complete: boolean;
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

let upstream: Server;
let gateway: Server;
let gatewayUrl: string;
let received: Received[] = [];

/** A request straight over node:http (no client-added headers), its body written as given, chunk by chunk. */
function send(method: string, path: string, options: { headers?: Record<string, string>; chunks?: Buffer[]; pauseMs?: number } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let answered = false;
    // The path is given as is: a URL string would have its dot segments resolved by the client.
    const { hostname, port } = new URL(gatewayUrl);
    const req = request({ hostname, port, path, method, headers: options.headers, agent: false }, (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    // Once answered, a refused body may meet a closed connection; that is expected.
    req.on('error', (error) => {
      if (!answered) reject(error);
    });
    void (async () => {
      for (const [index, chunk] of (options.chunks ?? []).entries()) {
        if (index > 0 && options.pauseMs) await new Promise((r) => setTimeout(r, options.pauseMs));
        if (!req.destroyed) req.write(chunk);
      }
      if (!req.destroyed) req.end();
    })();
  });
}

async function settled(): Promise<void> {
  await new Promise((r) => setTimeout(r, 100));
}

beforeAll(async () => {
  upstream = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let recorded = false;
    const record = (complete: boolean) => {
      if (recorded) return;
      recorded = true;
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks), complete });
    };
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('close', () => record(req.complete));
    req.on('end', () => {
      record(true);
      if (req.url?.startsWith('/media/')) {
        res.writeHead(206, { 'content-type': 'audio/wav', 'content-range': 'bytes 0-3/10', 'accept-ranges': 'bytes', 'x-internal': 'secret' });
        res.end(Buffer.from([1, 2, 3, 4]));
      } else {
        res.writeHead(202, { 'content-type': 'text/xml', 'x-internal': 'secret', 'set-cookie': 'a=b' });
        res.end('<Response/>');
      }
    });
  });
  const upstreamUrl = await listen(upstream, 0, '127.0.0.1');
  // A port that was just free: nothing answers there.
  const dead = createServer();
  const deadUrl = await listen(dead, 0, '127.0.0.1');
  await closeServer(dead);
  const subgraphUrls = { sms: upstreamUrl, down: deadUrl };
  gateway = createHttpServer({ '/media/': mediaProxy(subgraphUrls, logger), '/webhooks/': webhookProxy(subgraphUrls, logger, LIMIT) }, logger);
  gatewayUrl = await listen(gateway, 0, '127.0.0.1');
});

afterAll(async () => {
  await closeServer(gateway);
  await closeServer(upstream);
});

beforeEach(() => {
  received = [];
});

describe('webhooks', () => {
  it('forwards a POST body byte for byte, with its query string', async () => {
    const body = Buffer.from([0xff, 0xfe, 0x00, 0xc3, 0x28, 0x80, 0xe2, 0x82, 0x0a, 0x0d]);
    const answer = await send('POST', '/webhooks/sms/inbound/status?From=%2B15551234&x=a%20b', {
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(body.length) },
      chunks: [body],
    });
    expect(answer.status).toBe(202);
    expect(answer.body.toString()).toBe('<Response/>');
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({ method: 'POST', url: '/webhooks/inbound/status?From=%2B15551234&x=a%20b', complete: true });
    expect(received[0]!.body.equals(body)).toBe(true);
  });

  it('forwards a form-encoded body and the signature headers, nothing else', async () => {
    const form = 'AccountSid=AC123&Body=Hello+%C3%A9t%C3%A9%21&From=%2B15551234&To=%2B15559876';
    const answer = await send('POST', '/webhooks/sms/twilio', {
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'user-agent': 'TwilioProxy/1.1',
        'x-twilio-signature': 'sig+/=',
        'x-twilio-email-event-webhook-signature': 'ecdsa-sig',
        'x-twilio-email-event-webhook-timestamp': '1700000000',
        'messagebird-signature-jwt': 'jwt.jwt.jwt',
        'x-correlation-id': 'corr-12345678',
        authorization: 'Bearer stolen',
        cookie: 'session=1',
        'x-forwarded-for': '10.0.0.1',
      },
      chunks: [Buffer.from(form, 'latin1')],
    });
    expect(answer.status).toBe(202);
    // Only content-type and content-length come back.
    expect(answer.headers['content-type']).toBe('text/xml');
    expect(answer.headers['x-internal']).toBeUndefined();
    expect(answer.headers['set-cookie']).toBeUndefined();
    expect(answer.headers['access-control-allow-origin']).toBeUndefined();
    const got = received[0]!;
    expect(got.body.toString('latin1')).toBe(form);
    expect(got.headers).toMatchObject({
      'content-type': 'application/x-www-form-urlencoded',
      'user-agent': 'TwilioProxy/1.1',
      'x-twilio-signature': 'sig+/=',
      'x-twilio-email-event-webhook-signature': 'ecdsa-sig',
      'x-twilio-email-event-webhook-timestamp': '1700000000',
      'messagebird-signature-jwt': 'jwt.jwt.jwt',
      'x-correlation-id': 'corr-12345678',
    });
    expect(got.headers.authorization).toBeUndefined();
    expect(got.headers.cookie).toBeUndefined();
    expect(got.headers['x-forwarded-for']).toBeUndefined();
  });

  it('answers 404 for an unknown subgraph', async () => {
    const answer = await send('POST', '/webhooks/nosuch/inbound', { chunks: [Buffer.from('x')] });
    expect(answer.status).toBe(404);
    expect(JSON.parse(answer.body.toString())).toMatchObject({ errors: [{ extensions: { code: 'NOT_FOUND' } }] });
    await settled();
    expect(received).toHaveLength(0);
  });

  it('answers 405 with Allow: POST to any other method', async () => {
    for (const method of ['GET', 'PUT', 'OPTIONS']) {
      const answer = await send(method, '/webhooks/sms/inbound');
      expect(answer.status).toBe(405);
      expect(answer.headers.allow).toBe('POST');
      expect(answer.headers['access-control-allow-origin']).toBeUndefined();
      expect(JSON.parse(answer.body.toString())).toMatchObject({ errors: [{ extensions: { code: 'METHOD_NOT_ALLOWED' } }] });
    }
    await settled();
    expect(received).toHaveLength(0);
  });

  it('answers 404 to dot segments and backslashes, plain or encoded', async () => {
    for (const path of ['/webhooks/sms/../graphql', '/webhooks/sms/%2e%2e/graphql', '/webhooks/sms/a/./b', '/webhooks/sms/a\\..\\b', '/webhooks/sms/a%5cb']) {
      const answer = await send('POST', path, { chunks: [Buffer.from('x')] });
      expect(answer.status, path).toBe(404);
    }
    await settled();
    expect(received).toHaveLength(0);
  });

  it('answers 502 when the subgraph is down', async () => {
    const answer = await send('POST', '/webhooks/down/inbound', { headers: { 'content-type': 'text/plain' }, chunks: [Buffer.from('hello')] });
    expect(answer.status).toBe(502);
    expect(JSON.parse(answer.body.toString())).toMatchObject({ errors: [{ extensions: { code: 'BAD_GATEWAY' } }] });
  });

  it('forwards a body of exactly the limit', async () => {
    const body = Buffer.alloc(LIMIT, 7);
    const answer = await send('POST', '/webhooks/sms/inbound', { chunks: [body.subarray(0, 500), body.subarray(500)], pauseMs: 50 });
    expect(answer.status).toBe(202);
    expect(received[0]!.body.equals(body)).toBe(true);
  });

  it('answers 413 to a declared length over the limit without calling the subgraph', async () => {
    const body = Buffer.alloc(LIMIT + 1, 1);
    const answer = await send('POST', '/webhooks/sms/inbound', { headers: { 'content-length': String(body.length) }, chunks: [body] });
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body.toString())).toMatchObject({ errors: [{ extensions: { code: 'PAYLOAD_TOO_LARGE' } }] });
    await settled();
    expect(received).toHaveLength(0);
  });

  it('answers 413 to a chunked body that passes the limit, and the subgraph gets no complete request', async () => {
    // The first chunk reaches the subgraph; the second passes the limit mid-stream.
    const answer = await send('POST', '/webhooks/sms/inbound', { chunks: [Buffer.alloc(600, 1), Buffer.alloc(600, 2)], pauseMs: 150 });
    expect(answer.status).toBe(413);
    expect(answer.headers.connection).toBe('close');
    await settled();
    // It saw the first chunk, then the request was cut off.
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({ url: '/webhooks/inbound', complete: false });
    expect(received[0]!.body.length).toBe(600);
  });

  it('still serves requests after refusing one', async () => {
    await send('POST', '/webhooks/sms/inbound', { chunks: [Buffer.alloc(2000, 1)] });
    const answer = await send('POST', '/webhooks/sms/inbound', { chunks: [Buffer.from('ok')] });
    expect(answer.status).toBe(202);
  });
});

describe('media', () => {
  it('still forwards a GET with its range and query, and the media response headers', async () => {
    const answer = await send('GET', '/media/sms/files/a.wav?expires=1&sig=abc', { headers: { range: 'bytes=0-3', authorization: 'Bearer x' } });
    expect(answer.status).toBe(206);
    expect([...answer.body]).toEqual([1, 2, 3, 4]);
    expect(answer.headers).toMatchObject({ 'content-type': 'audio/wav', 'content-range': 'bytes 0-3/10', 'accept-ranges': 'bytes' });
    expect(answer.headers['x-internal']).toBeUndefined();
    expect(received[0]).toMatchObject({ method: 'GET', url: '/media/files/a.wav?expires=1&sig=abc', complete: true });
    expect(received[0]!.headers.range).toBe('bytes=0-3');
    expect(received[0]!.headers.authorization).toBeUndefined();
  });

  it('still streams an upload larger than the webhook limit', async () => {
    const body = Buffer.alloc(LIMIT * 8, 3);
    const answer = await send('PUT', '/media/sms/uploads/one-time', { headers: { 'content-type': 'audio/wav', 'content-length': String(body.length) }, chunks: [body] });
    expect(answer.status).toBe(206);
    expect(received[0]).toMatchObject({ method: 'PUT', url: '/media/uploads/one-time', complete: true });
    expect(received[0]!.body.equals(body)).toBe(true);
  });

  it('still answers 404 to an unknown subgraph or a dot segment', async () => {
    expect((await send('GET', '/media/nosuch/a.wav')).status).toBe(404);
    expect((await send('GET', '/media/sms/../graphql')).status).toBe(404);
    await settled();
    expect(received).toHaveLength(0);
  });
});
