import { request as httpRequest, Agent, type IncomingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { registerMember } from './support/people.js';
import { follow, wsClients } from './support/subscriptions.js';
import { startTestStack, type TestStack } from './support/stack.js';

/**
 * The gateway's rate limits through the whole stack: token buckets of 3 refilled at 2 a second,
 * per client address for anonymous callers and per user for signed-in ones, behind one trusted
 * proxy (the client is X-Forwarded-For's last entry). Each test has addresses of its own, so
 * no two tests share a bucket.
 */
let stack: TestStack;
let url: string;

beforeAll(async () => {
  stack = await startTestStack({
    env: {
      RATE_LIMIT_IP_BURST: '3',
      RATE_LIMIT_IP_PER_SECOND: '2',
      RATE_LIMIT_USER_BURST: '3',
      RATE_LIMIT_USER_PER_SECOND: '2',
      TRUSTED_PROXIES: '1',
    },
  });
  url = stack.app.gatewayUrl;
  // The first request plans and caches `{ __typename }`: slow enough for a token to come back
  // between a test's first take and its next one.
  await ask(address());
});
const ws = wsClients(() => url);
afterAll(async () => {
  await ws.disposeAll();
  await stack?.close();
});

let lastAddress = 0;
/** A client address no other test uses (TEST-NET-3, RFC 5737). */
const address = () => `203.0.113.${++lastAddress}`;

interface Answer {
  status: number;
  headers: Headers;
  body: { data?: any; errors?: { message: string; extensions?: { code?: string } }[] };
}

/** `{ __typename }` (no subgraph: the cheapest request there is) as a client at `forwardedFor`. */
async function ask(forwardedFor: string | null, options: { token?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(forwardedFor === null ? {} : { 'x-forwarded-for': forwardedFor }),
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      ...options.headers,
    },
    body: JSON.stringify({ query: '{ __typename }' }),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Answer['body'] };
}

const passed = (answer: Answer) => answer.status === 200 && answer.body.data?.__typename === 'Query';

function expectLimited(answer: Answer): number {
  expect(answer.status).toBe(429);
  expect(answer.body).toEqual({ errors: [{ message: expect.stringMatching(/^Too many requests/), extensions: { code: 'RATE_LIMITED' } }] });
  const retryAfter = answer.headers.get('retry-after');
  expect(retryAfter).toMatch(/^\d+$/);
  expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
  return Number(retryAfter);
}

/** Spends an anonymous address's whole burst (3), in parallel so no token refills meanwhile. */
async function exhaust(forwardedFor: string, token?: string): Promise<void> {
  const answers = await Promise.all([1, 2, 3].map(() => ask(forwardedFor, { token })));
  expect(answers.map(passed)).toEqual([true, true, true]);
}

/** storyloom_gateway_rate_limited_total by bucket, from the gateway's /metrics. */
async function refusals(bucket: 'ip' | 'user'): Promise<number> {
  const text = await (await fetch(`${new URL(url).origin}/metrics`)).text();
  const match = new RegExp(`^storyloom_gateway_rate_limited_total\\{bucket="${bucket}"\\} (\\d+)$`, 'm').exec(text);
  return match ? Number(match[1]) : 0;
}

describe('anonymous callers, by address', () => {
  it('pass 3 times, then get 429 RATE_LIMITED with Retry-After, and pass again once it has elapsed', async () => {
    const client = address();
    await exhaust(client);
    const retryAfter = expectLimited(await ask(client));
    expect(retryAfter).toBe(1); // one token at 2 a second: half a second, rounded up
    await sleep(retryAfter * 1000);
    expect(passed(await ask(client))).toBe(true);
  });

  it('limit each address on its own: another one is served while the first is limited', async () => {
    const limited = address();
    await exhaust(limited);
    expect((await ask(limited)).status).toBe(429);
    const other = address();
    expect(passed(await ask(other))).toBe(true);
    expect((await ask(limited)).status).toBe(429);
  });

  it('take the last X-Forwarded-For entry with one trusted proxy: a spoofed left entry does not escape the limit', async () => {
    const real = address();
    await exhaust(real);
    for (const spoofed of [`1.2.3.4, ${real}`, `5.6.7.8,${real}`, `${address()}, 9.9.9.9, ${real}`]) {
      expect((await ask(spoofed)).status, spoofed).toBe(429);
    }
    // Nor do two X-Forwarded-For headers (one list, in order): the proxy's entry is still last.
    const res = await fetch(url, {
      method: 'POST',
      headers: [
        ['content-type', 'application/json'],
        ['x-forwarded-for', '1.2.3.4'],
        ['x-forwarded-for', real],
      ],
      body: JSON.stringify({ query: '{ __typename }' }),
    });
    expect(res.status).toBe(429);
  });

  it('counts the refusals in storyloom_gateway_rate_limited_total{bucket="ip"}', async () => {
    const before = { ip: await refusals('ip'), user: await refusals('user') };
    const client = address();
    await exhaust(client);
    for (let n = 0; n < 2; n++) expect((await ask(client)).status).toBe(429);
    expect({ ip: await refusals('ip'), user: await refusals('user') }).toEqual({ ip: before.ip + 2, user: before.user });
  });
});

describe('signed-in callers, by user', () => {
  it('are limited per user whatever their address, while anonymous requests from that address still pass', async () => {
    const home = address();
    const member = await registerMember({ gql: (query, variables) => gqlFrom(home, query, variables) }, 'Uma');
    const before = await refusals('user');
    await exhaust(home, member.token);
    // Another address (a phone leaving the Wi-Fi), and no X-Forwarded-For at all: the same user's bucket.
    expectLimited(await ask(address(), { token: member.token }));
    expectLimited(await ask(null, { token: member.token }));
    expect(await refusals('user')).toBe(before + 2);
    // The address's own bucket is separate: Register spent one of its 3 tokens, the user's
    // requests none. (Not how many are left exactly: tokens come back while this test runs.)
    expect(passed(await ask(home))).toBe(true);
    expect(passed(await ask(home))).toBe(true);
  });

  it('do not spend their address’s bucket: anonymous callers behind the same address are unaffected by a limited user', async () => {
    const office = address();
    const member = await registerMember({ gql: (query, variables) => gqlFrom(office, query, variables) }, 'Vic');
    await exhaust(office, member.token);
    expect((await ask(office, { token: member.token })).status).toBe(429);
    expect(passed(await ask(office))).toBe(true);
  });
});

/** The stack's `gql`, as a client at `forwardedFor`. */
async function gqlFrom(forwardedFor: string, query: string, variables?: Record<string, unknown>) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-forwarded-for': forwardedFor },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json()) as Answer['body'];
  return { status: res.status, headers: res.headers, data: body.data, errors: body.errors as never };
}

describe('a refusal and the connection it came on', () => {
  interface RawAnswer {
    status: number;
    headers: IncomingHttpHeaders;
    body: string;
    socket: Socket;
  }

  /** A POST over node:http with `agent` (keep-alive), reporting the socket it went over. */
  function postVia(agent: Agent, forwardedFor: string, body: string): Promise<RawAnswer> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(url, {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-forwarded-for': forwardedFor },
      });
      req.on('error', reject);
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text, socket: req.socket! }));
      });
      req.end(body);
    });
  }

  it('closes a kept-alive connection when refusing a POST whose body it did not read; the next request is answered in full on a new one', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const limited = address();
      const other = address();
      await exhaust(limited);
      const query = JSON.stringify({ query: '{ __typename }' });
      const first = await postVia(agent, other, query);
      expect([first.status, JSON.parse(first.body)]).toEqual([200, { data: { __typename: 'Query' } }]);
      const refused = await postVia(agent, limited, query);
      expect(refused.status).toBe(429);
      // It went over the kept-alive connection, which the gateway then closed.
      expect(refused.socket).toBe(first.socket);
      expect(refused.headers.connection).toBe('close');
      const next = await postVia(agent, other, query);
      expect([next.status, JSON.parse(next.body)]).toEqual([200, { data: { __typename: 'Query' } }]);
      expect(next.socket).not.toBe(first.socket);
    } finally {
      agent.destroy();
    }
  });

  it('never takes the unread body of a refused POST for a request of its own', async () => {
    const limited = address();
    await exhaust(limited);
    // A body that is itself a request, pipelined behind nothing: were the connection kept and
    // the body parsed as the next request, a second response (the metrics) would follow.
    const smuggled = 'GET /metrics HTTP/1.1\r\nHost: gateway\r\n\r\n';
    const { port } = new URL(url);
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1');
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (text += chunk));
      socket.on('error', reject);
      socket.on('end', () => resolve(text));
      socket.write(
        `POST /graphql HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nX-Forwarded-For: ${limited}\r\nContent-Length: ${Buffer.byteLength(smuggled)}\r\n\r\n${smuggled}`,
      );
      setTimeout(() => reject(new Error(`the connection stayed open; received:\n${text}`)), 5_000).unref();
    });
    expect(raw.match(/^HTTP\/1\.1 \d{3}/gm)).toEqual(['HTTP/1.1 429']);
    expect(raw).toMatch(/^connection: close\r$/im);
    expect(raw).not.toContain('storyloom_');
  });

  it('answers 429 to a client still sending a large body, rather than resetting the connection under it', async () => {
    const limited = address();
    await exhaust(limited);
    // 32 MB, sent a megabyte at a time after the headers: the refusal comes while it is being sent.
    const chunk = Buffer.alloc(1024 * 1024, 'x');
    const chunks = 32;
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': chunk.length * chunks, 'x-forwarded-for': limited },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      // Once the refusal is read, the gateway's closing the connection under the rest is expected.
      req.on('error', (error) => reject(new Error(`no response before ${error.message}`)));
      req.flushHeaders();
      let sent = 0;
      const write = () => {
        while (sent < chunks) {
          sent++;
          if (!req.write(chunk)) return void req.once('drain', write);
        }
        req.end();
      };
      write();
    });
    expect(status).toBe(429);
  });

  it('lets a browser on another origin read Retry-After on a 429 (CORS exposes it)', async () => {
    const limited = address();
    await exhaust(limited);
    const refused = await ask(limited, { headers: { origin: 'https://app.example.com' } });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('access-control-allow-origin')).toBe('*');
    const exposed = (refused.headers.get('access-control-expose-headers') ?? '').split(',').map((h) => h.trim().toLowerCase());
    expect(exposed).toContain('retry-after');
  });
});

describe('graphql-ws', () => {
  const progress = 'subscription Progress($jobId: ID!) { narrationJobUpdated(jobId: $jobId) { id status } }';

  it("charges opening a connection and each subscribe to the user's bucket: once it is empty, a subscribe is RATE_LIMITED", async () => {
    const member = await registerMember({ gql: (query, variables) => gqlFrom(address(), query, variables) }, 'Wes');
    const client = ws.client(member.token);
    const codes: unknown[] = [];
    // The connection spends 1 of the 3 tokens, two subscribes the others (a job nobody has: NOT_FOUND).
    for (let i = 0; i < 3; i++) {
      const followed = follow(client, progress, { jobId: randomUUID() });
      await followed.done;
      codes.push((followed.error() as { extensions?: { code?: string } }[])[0]?.extensions?.code);
    }
    expect(codes).toEqual(['NOT_FOUND', 'NOT_FOUND', 'RATE_LIMITED']);
  });

  it('closes a connection opened with an empty bucket with 4429', async () => {
    const member = await registerMember({ gql: (query, variables) => gqlFrom(address(), query, variables) }, 'Xia');
    await exhaust(address(), member.token);
    const followed = follow(ws.client(member.token), progress, { jobId: randomUUID() });
    await followed.done;
    expect((followed.error() as { code?: number }).code).toBe(4429);
  });
});

describe('a refused GET', () => {
  it('keeps its kept-alive connection: it had no body to leave unread', async () => {
    const client = address();
    await exhaust(client);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const get = () =>
      new Promise<{ status: number; connection: string | undefined; socket: unknown }>((resolve, reject) => {
        const req = httpRequest(`${url}?query=${encodeURIComponent('{ __typename }')}`, { agent, headers: { 'x-forwarded-for': client, 'apollo-require-preflight': 'true' } }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode!, connection: res.headers.connection, socket: req.socket }));
        });
        req.on('error', reject);
        req.end();
      });
    const first = await get();
    const second = await get();
    agent.destroy();
    expect([first.status, second.status]).toEqual([429, 429]);
    expect(first.connection).toBe('keep-alive');
    expect(second.socket).toBe(first.socket);
  });
});
