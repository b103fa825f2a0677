import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DomainError } from '../../../platform/errors.js';
import { startFakeFacebook, type FakeFacebook } from '../../../test/fakes/facebook-graph.js';
import { startFakeOidcIssuer, type FakeOidcIssuer } from '../../../test/fakes/oidc-issuer.js';
import { createFacebookVerifier } from './facebook.js';
import { createProviderVerifiers } from './index.js';
import { createOidcVerifier } from './oidc.js';
import type { ProviderVerifier } from './provider.js';
import { freePort } from '../../../test/support/net.js';

const invalid = (field: string) => ({ kind: 'user', code: 'INVALID_PROVIDER_TOKEN', field });

describe('OIDC verifiers', () => {
  let idp: FakeOidcIssuer;
  let google: ProviderVerifier;
  let microsoft: ProviderVerifier;
  let msTemplate: string;

  beforeAll(async () => {
    idp = await startFakeOidcIssuer();
    msTemplate = `${idp.issuerUrl}/{tenantid}/v2.0`;
    const verifiers = createProviderVerifiers({
      google: { clientId: 'google-client', jwksUrl: idp.jwksUrl, issuer: idp.issuerUrl },
      microsoft: { clientId: 'ms-client', jwksUrl: idp.jwksUrl, issuer: msTemplate },
    });
    google = verifiers.GOOGLE!;
    microsoft = verifiers.MICROSOFT!;
  });
  afterAll(() => idp.stop());

  const googleClaims = { sub: 'g-123', aud: 'google-client', email: 'ada@example.com', email_verified: true, name: 'Ada' };

  it('Google: a valid idToken yields the identity', async () => {
    const idToken = await idp.signIdToken(googleClaims);
    await expect(google.verify({ idToken })).resolves.toEqual({
      provider: 'GOOGLE', subject: 'g-123', email: 'ada@example.com', emailVerified: true, name: 'Ada',
    });
  });

  it('Google: email_verified must be literally true', async () => {
    const idToken = await idp.signIdToken({ ...googleClaims, email_verified: 'true' });
    await expect(google.verify({ idToken })).resolves.toMatchObject({ emailVerified: false });
  });

  it.each([
    ['wrong audience', () => idp.signIdToken({ ...googleClaims, aud: 'someone-else' })],
    ['wrong issuer', () => idp.signIdToken({ ...googleClaims, iss: 'https://evil.example' })],
    ['expired', () => idp.signIdToken(googleClaims, { expiresInSeconds: -3600 })],
    ['foreign-key-signed', () => idp.signWithForeignKey(googleClaims)],
    ['garbage', async () => 'not-a-jwt'],
    ['missing sub', () => idp.signIdToken({ ...googleClaims, sub: undefined })],
  ])('Google: %s -> INVALID_PROVIDER_TOKEN', async (_name, makeToken) => {
    const idToken = await makeToken();
    await expect(google.verify({ idToken })).rejects.toMatchObject(invalid('idToken'));
  });

  it('missing idToken -> INVALID_PROVIDER_TOKEN', async () => {
    await expect(google.verify({ idToken: null, accessToken: 'x' })).rejects.toMatchObject(invalid('idToken'));
  });

  it('an unreachable JWKS is an internal error, not the user\'s fault', async () => {
    const port = await freePort();
    const verifier = createOidcVerifier({
      provider: 'GOOGLE', jwksUrl: `http://127.0.0.1:${port}/jwks`, issuer: idp.issuerUrl, audience: 'google-client', timeoutMs: 2000,
    });
    const error = await verifier.verify({ idToken: await idp.signIdToken(googleClaims) }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(DomainError);
    expect((error as Error).message).toMatch(/provider unavailable/);
  });

  const tid = '9188040d-6c67-4c5b-b112-36a304b66dad';
  const msClaims = { sub: 'm-1', aud: 'ms-client', tid, name: 'Grace' };
  const msToken = (claims: Record<string, unknown>) =>
    idp.signIdToken({ ...msClaims, iss: msTemplate.replace('{tenantid}', tid), ...claims });

  it('Microsoft: tenant issuer matching tid, verified email via xms_edov', async () => {
    const idToken = await msToken({ email: 'grace@contoso.com', xms_edov: true });
    await expect(microsoft.verify({ idToken })).resolves.toEqual({
      provider: 'MICROSOFT', subject: 'm-1', email: 'grace@contoso.com', emailVerified: true, name: 'Grace',
    });
  });

  it('Microsoft: email without xms_edov, or preferred_username, is not verified', async () => {
    await expect(microsoft.verify({ idToken: await msToken({ email: 'grace@contoso.com' }) })).resolves.toMatchObject({
      email: 'grace@contoso.com', emailVerified: false,
    });
    await expect(microsoft.verify({ idToken: await msToken({ preferred_username: 'grace@contoso.com' }) })).resolves.toMatchObject({
      email: 'grace@contoso.com', emailVerified: false,
    });
  });

  // Functions: the issuer's port (hence msTemplate) is only known after beforeAll.
  it.each([
    ['iss of another tenant', () => ({ iss: msTemplate.replace('{tenantid}', 'other-tenant') })],
    ['missing tid', () => ({ tid: undefined })],
    ['non-string tid', () => ({ tid: 42 })],
    ['literal template as iss', () => ({ iss: msTemplate })],
    ['wrong audience', () => ({ aud: 'google-client' })],
  ])('Microsoft: %s -> INVALID_PROVIDER_TOKEN', async (_name, claims) => {
    await expect(microsoft.verify({ idToken: await msToken(claims()) })).rejects.toMatchObject(invalid('idToken'));
  });
});

describe('Facebook verifier', () => {
  const app = { appId: '1234567890', appSecret: 'fake-app-secret' };
  const user = { id: '10158000000000001', name: 'Linus', email: 'linus@example.com' };
  let fb: FakeFacebook;
  let verifier: ProviderVerifier;

  beforeAll(async () => {
    fb = await startFakeFacebook(app);
    verifier = createProviderVerifiers({ facebook: { ...app, graphUrl: fb.graphUrl } }).FACEBOOK!;
  });
  afterAll(() => fb.stop());

  it('a valid token yields the identity and sends appsecret_proof', async () => {
    const token = fb.issueToken(user);
    await expect(verifier.verify({ accessToken: token })).resolves.toEqual({
      provider: 'FACEBOOK', subject: user.id, email: user.email, emailVerified: true, name: 'Linus',
    });
    const me = fb.requests.filter((r) => r.startsWith('/v19.0/me?') && r.includes(token)).at(-1);
    const proof = createHmac('sha256', app.appSecret).update(token).digest('hex');
    expect(new URL(me!, 'http://x').searchParams.get('appsecret_proof')).toBe(proof);
  });

  it('a user without email and a never-expiring token (expires_at 0)', async () => {
    const token = fb.issueToken({ id: '42', name: 'NoMail' }, { expiresAt: 0 });
    await expect(verifier.verify({ accessToken: token })).resolves.toMatchObject({ subject: '42', email: null, emailVerified: false });
  });

  it.each([
    ['is_valid false', () => fb.issueToken(user, { valid: false })],
    ["another app's token", () => fb.issueToken(user, { appId: '999' })],
    ['expired', () => fb.issueToken(user, { expiresAt: Math.floor(Date.now() / 1000) - 60 })],
    ['unknown token', () => 'EAAgarbage'],
  ])('%s -> INVALID_PROVIDER_TOKEN', async (_name, makeToken) => {
    await expect(verifier.verify({ accessToken: makeToken() })).rejects.toMatchObject(invalid('accessToken'));
  });

  it('missing accessToken -> INVALID_PROVIDER_TOKEN', async () => {
    await expect(verifier.verify({ idToken: 'x' })).rejects.toMatchObject(invalid('accessToken'));
  });

  it('wrong app secret is a configuration (internal) error, not the user\'s fault', async () => {
    const misconfigured = createFacebookVerifier({ ...app, appSecret: 'wrong', graphUrl: fb.graphUrl });
    const error = await misconfigured.verify({ accessToken: fb.issueToken(user) }).catch((e: unknown) => e);
    expect(error).not.toBeInstanceOf(DomainError);
  });

  it('network failures and 5xx are internal errors', async () => {
    const down = createFacebookVerifier({ ...app, graphUrl: `http://127.0.0.1:${await freePort()}/v19.0` });
    await expect(down.verify({ accessToken: 'EAAx' })).rejects.toThrow(/provider unavailable/);
    const failing = createFacebookVerifier({ ...app, graphUrl: fb.graphUrl, fetch: async () => new Response('oops', { status: 503 }) });
    const error = await failing.verify({ accessToken: 'EAAx' }).catch((e: unknown) => e);
    expect(error).not.toBeInstanceOf(DomainError);
    expect((error as Error).message).toMatch(/unavailable \(HTTP 503\)/);
  });
});
