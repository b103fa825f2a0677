import { SignJWT, generateKeyPair, importJWK, type JWK } from 'jose';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signCaller, ANONYMOUS } from '../platform/internal-auth.js';
import { pruneRefreshTokens } from '../subgraphs/identity/sessions.service.js';
import { startFakeOidcIssuer, type FakeOidcIssuer } from './fakes/oidc-issuer.js';
import { clientOperation } from './support/clients.js';
import { startTestStack, type TestStack } from './support/stack.js';

const REGISTER = clientOperation('Register');
const LOG_IN = clientOperation('LogIn');
const REFRESH = clientOperation('RefreshSession');
const SIGN_IN = clientOperation('SignInWithProvider');
const ME = '{ me { id email } }';

let stack: TestStack;
let db: pg.Client;
let google: FakeOidcIssuer;

beforeAll(async () => {
  google = await startFakeOidcIssuer();
  stack = await startTestStack({ env: { GOOGLE_CLIENT_ID: 'google-client', GOOGLE_JWKS_URL: google.jwksUrl, GOOGLE_ISSUER: google.issuerUrl } });
  db = new pg.Client({ connectionString: stack.databaseUrl });
  await db.connect();
});

afterAll(async () => {
  await db?.end();
  await stack?.close();
  await google?.stop();
});

const count = async (sql: string, params: unknown[] = []) => Number((await db.query(sql, params)).rows[0].count);
const usersWith = (email: string) => count('select count(*) from identity."user" where email = $1', [email]);
const registrationsOf = (email: string) =>
  count(`select count(*) from identity.outbox where type = 'user.registered' and envelope->'payload'->>'email' = $1`, [email]);
const register = (email: string, password = 'long enough password') =>
  stack.gql(REGISTER, { input: { email, password, displayName: 'Test' } });
const codeOf = (res: { data?: any }, field: string) => res.data[field].userErrors.map((e: { code: string }) => e.code);

describe('registration input', () => {
  it.each([
    ['not-an-email', 'long enough password', 'INVALID_EMAIL', 'email'],
    ['a@b', 'long enough password', 'INVALID_EMAIL', 'email'],
    ['short@example.com', 'tooshort', 'WEAK_PASSWORD', 'password'],
  ])('refuses %s / %s with %s and stores nothing', async (email, password, code, field) => {
    const res = await register(email, password);
    expect(res.data.register).toMatchObject({ session: null, user: null, userErrors: [{ code, field }] });
    expect(await usersWith(email.toLowerCase())).toBe(0);
    expect(await registrationsOf(email.toLowerCase())).toBe(0);
  });

  it('refuses a duplicate email, whatever its case', async () => {
    expect(codeOf(await register('dup@example.com'), 'register')).toEqual([]);
    expect(codeOf(await register('DUP@Example.COM'), 'register')).toEqual(['EMAIL_TAKEN']);
    expect(await usersWith('dup@example.com')).toBe(1);
    expect(await registrationsOf('dup@example.com')).toBe(1);
  });

  it('lets exactly one of several concurrent registrations of one email succeed', async () => {
    const results = await Promise.all(Array.from({ length: 5 }, () => register('race@example.com')));
    const codes = results.map((r) => codeOf(r, 'register').join());
    expect(codes.filter((c) => c === '')).toHaveLength(1);
    expect(codes.filter((c) => c === 'EMAIL_TAKEN')).toHaveLength(4);
    expect(await usersWith('race@example.com')).toBe(1);
    expect(await registrationsOf('race@example.com')).toBe(1);
  });
});

describe('credentials', () => {
  it('answers a wrong password and an unknown email alike', async () => {
    await register('pw@example.com');
    const wrong = await stack.gql(LOG_IN, { input: { email: 'pw@example.com', password: 'not the password' } });
    const unknown = await stack.gql(LOG_IN, { input: { email: 'nobody@example.com', password: 'not the password' } });
    expect(wrong.data.logIn).toEqual({ session: null, user: null, userErrors: [{ code: 'INVALID_CREDENTIALS', field: null, message: expect.any(String) }] });
    expect(unknown.data.logIn).toEqual(wrong.data.logIn);
    // No session and no user.login for a failed attempt.
    const { rows } = await db.query(`select id from identity."user" where email = 'pw@example.com'`);
    expect(await count(`select count(*) from identity.outbox where type = 'user.login' and envelope->>'userId' = $1`, [rows[0].id])).toBe(0);
    expect(await count('select count(*) from identity.refresh_token where user_id = $1', [rows[0].id])).toBe(1);
  });

  it('revokes the whole session family when a rotated refresh token is reused', async () => {
    const first = (await register('reuse@example.com')).data.register.session.refreshToken;
    const second = (await stack.gql(REFRESH, { refreshToken: first })).data.refreshSession.session.refreshToken;
    // Rotation keeps the sign-in's end: refreshing cannot stretch a session forever.
    const { rows } = await db.query(
      `select count(distinct expires_at) as ends, count(*) as tokens from identity.refresh_token t join identity."user" u on u.id = t.user_id where u.email = 'reuse@example.com'`,
    );
    expect(rows[0]).toEqual({ ends: '1', tokens: '2' });
    const replay = await stack.gql(REFRESH, { refreshToken: first });
    expect(codeOf(replay, 'refreshSession')).toEqual(['INVALID_REFRESH_TOKEN']);
    // The legitimate holder of `second` must sign in again too: we cannot tell thief from owner.
    expect(codeOf(await stack.gql(REFRESH, { refreshToken: second }), 'refreshSession')).toEqual(['INVALID_REFRESH_TOKEN']);
    expect(codeOf(await stack.gql(REFRESH, { refreshToken: 'made-up' }), 'refreshSession')).toEqual(['INVALID_REFRESH_TOKEN']);
  });

  it('prunes refresh tokens a day after their sign-in ended', async () => {
    const { user } = (await register('prune@example.com')).data.register;
    const orm = stack.app.subgraphs.find((s) => s.name === 'identity')!.orm;
    const tokens = () => count('select count(*) from identity.refresh_token where user_id = $1', [user.id]);
    expect(await tokens()).toBe(1);
    const ttl = stack.config.REFRESH_TOKEN_TTL_SECONDS * 1000;
    expect(await pruneRefreshTokens(orm.em.fork(), new Date(Date.now() + ttl))).toBe(0); // ended, within the grace day
    await pruneRefreshTokens(orm.em.fork(), new Date(Date.now() + ttl + 25 * 3600_000));
    expect(await tokens()).toBe(0);
  });

  it('refuses an invalid provider token and stores nothing', async () => {
    const forged = await google.signWithForeignKey({ sub: 'g-x', aud: 'google-client', email: 'forged@gmail.com', email_verified: true });
    for (const idToken of ['garbage', forged]) {
      const res = await stack.gql(SIGN_IN, { input: { provider: 'GOOGLE', idToken } });
      expect(codeOf(res, 'signInWithProvider')).toEqual(['INVALID_PROVIDER_TOKEN']);
    }
    expect(await usersWith('forged@gmail.com')).toBe(0);
    const unconfigured = await stack.gql(SIGN_IN, { input: { provider: 'FACEBOOK', accessToken: 'x' } });
    expect(codeOf(unconfigured, 'signInWithProvider')).toEqual(['PROVIDER_NOT_CONFIGURED']);
  });
});

describe('access tokens at the gateway', () => {
  let token: string;
  let refreshToken: string;
  let claims: Record<string, unknown>;
  let header: { kid: string };

  beforeAll(async () => {
    ({ accessToken: token, refreshToken } = (await register('jwt@example.com')).data.register.session);
    const [h, p] = token.split('.');
    header = JSON.parse(Buffer.from(h!, 'base64url').toString());
    claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
  });

  /** A refused token leaves the request anonymous: whatever needs a user says UNAUTHENTICATED, and why. */
  const expectUnauthenticated = async (bearer: string, reason = 'The access token is invalid') => {
    const res = await stack.gql('{ __typename me { id email } }', {}, { token: bearer });
    expect(res.errors?.map((e) => [e.extensions?.code, e.message])).toEqual([['UNAUTHENTICATED', reason]]);
    // One field failing does not fail the request: the rest of the data is there, with 200.
    expect([res.status, res.data]).toEqual([200, { __typename: 'Query', me: null }]);
  };

  it('accepts the genuine token', async () => {
    expect((await stack.gql(ME, {}, { token })).data.me.email).toBe('jwt@example.com');
  });

  it('refuses a tampered token', async () => {
    const [h, , s] = token.split('.');
    const payload = Buffer.from(JSON.stringify({ ...claims, roles: ['USER', 'ADMIN'] })).toString('base64url');
    await expectUnauthenticated(`${h}.${payload}.${s}`);
  });

  it('refuses an expired token signed with the real key', async () => {
    const { rows } = await db.query('select private_jwk from identity.signing_key where kid = $1', [header.kid]);
    const key = await importJWK(rows[0].private_jwk as JWK, 'ES256');
    const past = Math.floor(Date.now() / 1000) - 3600;
    const expired = await new SignJWT({ ...claims, iat: past - 900, exp: past }).setProtectedHeader({ alg: 'ES256', kid: header.kid, typ: 'at+jwt' }).sign(key);
    await expectUnauthenticated(expired, 'The access token has expired; refresh the session');
    // The stale token attached by habit does not stand in the way of refreshing the session.
    const refreshed = await stack.gql(REFRESH, { refreshToken }, { token: expired });
    expect(refreshed.data.refreshSession.userErrors).toEqual([]);
    expect((await stack.gql(ME, {}, { token: refreshed.data.refreshSession.session.accessToken })).data.me.email).toBe('jwt@example.com');
  });

  it('refuses a token signed by a foreign key, with or without a known key id', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    for (const kid of [header.kid, 'unknown-kid']) {
      const foreign = await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid, typ: 'at+jwt' }).sign(privateKey);
      await expectUnauthenticated(foreign);
    }
  });

  it('refuses a malformed Authorization header', async () => {
    const res = await stack.gql(ME, {}, { headers: { authorization: 'Basic abc' } });
    expect(res.errors?.map((e) => [e.extensions?.code, e.message])).toEqual([['UNAUTHENTICATED', 'Authorization must be "Bearer <access token>"']]);
  });
});

describe('subgraphs refuse requests that did not come through the gateway', () => {
  const identityUrl = () => `${stack.app.subgraphs.find((s) => s.name === 'identity')!.url}/graphql`;
  const ME_OP = { query: '{ me { id } }' };
  const post = (headers: Record<string, string>, operation: object = ME_OP) =>
    fetch(identityUrl(), { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(operation) });
  const sign = (over: Partial<Parameters<typeof signCaller>[1]> = {}, secret = stack.config.INTERNAL_SECRET, now = Date.now()) =>
    signCaller(secret, { audience: 'identity', caller: ANONYMOUS, correlationId: 'cid-12345678', operation: ME_OP, ...over }, now);

  it('refuses an unsigned request, a forged signature, a stale one and one meant for another subgraph', async () => {
    const forged = sign({ caller: { userId: 'x', roles: ['ADMIN'] } }, 'not-the-internal-secret-not-the-internal-secret');
    const stale = sign({}, stack.config.INTERNAL_SECRET, Date.now() - 10 * 60_000);
    const misdirected = sign({ audience: 'billing' });
    for (const headers of [{}, forged, stale, misdirected]) {
      const res = await post(headers);
      expect(res.status).toBe(401);
      expect(((await res.json()) as any).errors[0].extensions.code).toBe('UNAUTHENTICATED');
    }
  });

  it('refuses signed headers reused with an altered caller or another operation', async () => {
    const signed = sign();
    const altered = { ...signed, 'x-storyloom-caller': Buffer.from(JSON.stringify({ u: 'someone', r: ['ADMIN'] })).toString('base64url') };
    expect((await post(altered)).status).toBe(401);
    expect((await post(signed, { query: 'mutation { deleteAccount { deletedUserId } }' })).status).toBe(401);
    expect((await post(signed)).status).toBe(200);
  });
});

describe('malformed requests', () => {
  const raw = (body: string | Buffer, type = 'application/json') =>
    fetch(stack.app.gatewayUrl, { method: 'POST', headers: { 'content-type': type }, body });

  it('answers a malformed GraphQL document with GRAPHQL_PARSE_FAILED', async () => {
    const res = await stack.gql('mutation { register(input: { email: ', {});
    expect(res.status).toBe(400);
    expect(res.errors?.[0]?.extensions?.code).toBe('GRAPHQL_PARSE_FAILED');
  });

  it('answers invalid variables with BAD_USER_INPUT', async () => {
    const res = await stack.gql(REGISTER, { input: { email: 'x@example.com' } });
    expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('answers a body that is not JSON with BAD_REQUEST', async () => {
    const res = await raw('{"query": ');
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).errors[0].extensions.code).toBe('BAD_REQUEST');
  });

  it('refuses a 5 MB body with 413 and keeps serving', async () => {
    const big = JSON.stringify({ query: `{ me { id } }`, variables: { pad: 'x'.repeat(5 * 1024 * 1024) } });
    const res = await raw(big);
    expect(res.status).toBe(413);
    expect(((await res.json()) as any).errors[0].extensions.code).toBe('PAYLOAD_TOO_LARGE');
    expect((await register('after-big@example.com')).data.register.userErrors).toEqual([]);
  });

  it('refuses simple (non-preflighted) GET and text/plain requests (CSRF prevention)', async () => {
    const get = await fetch(`${stack.app.gatewayUrl}?query=${encodeURIComponent('{ me { id } }')}`);
    expect(get.status).toBe(400);
    const form = await raw('query={me{id}}', 'text/plain');
    expect(form.status).toBe(400);
  });
});
