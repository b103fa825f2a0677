import { randomUUID } from 'node:crypto';
import { generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeServer } from '../platform/http/server.js';
import { startTestStack, type TestStack } from './support/stack.js';

/** What a client sees when a subgraph behind the gateway is down: a coded error, no topology. */
let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack();
});
afterAll(async () => {
  await stack?.close();
});

describe('browsers on other origins (the web app, the schema explorer)', () => {
  it('get a preflight answer and CORS headers on the GraphQL response', async () => {
    const origin = 'https://sandbox.embed.apollographql.com';
    const preflight = await fetch(stack.app.gatewayUrl, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    expect([preflight.status, preflight.headers.get('access-control-allow-origin')]).toEqual([204, '*']);
    const res = await fetch(stack.app.gatewayUrl, {
      method: 'POST',
      headers: { origin, 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ __typename }' }),
    });
    expect([res.status, res.headers.get('access-control-allow-origin'), await res.json()]).toEqual([200, '*', { data: { __typename: 'Query' } }]);
  });
});

describe('gateway errors', () => {
  it('answers a failed subgraph call with an error naming the service, and no URL or address', async () => {
    const identity = stack.app.subgraphs.find((s) => s.name === 'identity')!;
    const url = new URL(identity.url);
    await closeServer(identity.http);
    identity.http.closeAllConnections();

    const res = await stack.gql('{ me { id } }');
    expect(res.errors).toEqual([{ message: 'The identity service is unavailable', extensions: { code: 'SUBGRAPH_UNAVAILABLE', subgraph: 'identity' } }]);
    const raw = JSON.stringify(res);
    expect(raw).not.toContain(url.port);
    expect(raw).not.toContain('127.0.0.1');

    // A token whose keys cannot be fetched (identity is down): 503, though the rate limits
    // (on, as by default) charged the request to its address before the token was judged.
    const { privateKey } = await generateKeyPair('ES256');
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'unknown-key' }).setSubject(randomUUID()).setIssuer('storyloom-identity').setAudience('storyloom').setExpirationTime('5m').sign(privateKey);
    const unverifiable = await stack.gql('{ plans { tier } }', {}, { token });
    expect([unverifiable.status, unverifiable.errors?.[0]?.extensions?.code]).toEqual([503, 'SERVICE_UNAVAILABLE']);
  });
});
