import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GraphQLError } from 'graphql';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createTokenVerifier } from './auth.js';

const ISSUER = 'https://identity.storyloom.test';
const AUDIENCE = 'storyloom-gateway';
const INVALID = 'The access token is invalid';

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

async function newKey(kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  return { kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } };
}

interface TokenOptions {
  kid?: string;
  typ?: string;
  sub?: string;
  iss?: string;
  aud?: string;
  roles?: unknown;
  /** A guest token's `scope` claim; left out when undefined. */
  scope?: unknown;
  /** Seconds from now; negative for a token that has already expired. */
  expiresIn?: number;
}

function sign(key: SigningKey, opts: TokenOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const expiresIn = opts.expiresIn ?? 300;
  return new SignJWT({ roles: opts.roles ?? ['USER'], ...(opts.scope !== undefined ? { scope: opts.scope } : {}) })
    .setProtectedHeader({ alg: 'ES256', kid: opts.kid ?? key.kid, typ: opts.typ ?? 'at+jwt' })
    .setSubject(opts.sub ?? 'user-1')
    .setIssuer(opts.iss ?? ISSUER)
    .setAudience(opts.aud ?? AUDIENCE)
    .setIssuedAt(Math.min(now, now + expiresIn - 60))
    .setExpirationTime(now + expiresIn)
    .sign(key.privateKey);
}

/** identity's /.well-known/jwks.json stand-in: the test decides what it publishes and counts fetches. */
class JwksServer {
  requests = 0;
  private keys: JWK[] = [];
  private readonly server: Server = createServer((_req, res) => {
    this.requests++;
    res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(JSON.stringify({ keys: this.keys }));
  });

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/.well-known/jwks.json`;
  }

  publish(...keys: SigningKey[]): void {
    this.keys = keys.map((k) => k.publicJwk);
  }

  reset(...keys: SigningKey[]): void {
    this.publish(...keys);
    this.requests = 0;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve, reject) => this.server.close((err) => (err ? reject(err) : resolve())));
  }
}

let jwks: JwksServer;
let key1: SigningKey;
let key2: SigningKey;

beforeAll(async () => {
  [key1, key2] = await Promise.all([newKey('key-1'), newKey('key-2')]);
  jwks = await new JwksServer().listen();
});
afterAll(() => jwks.close());
beforeEach(() => jwks.reset(key1));

const verifier = (jwksCooldownMs?: number) => createTokenVerifier({ jwksUrl: jwks.url, issuer: ISSUER, audience: AUDIENCE, jwksCooldownMs });
const bearer = (token: string) => `Bearer ${token}`;

describe('createTokenVerifier', () => {
  it('turns a valid access token into the caller', async () => {
    const callerOf = verifier();
    expect(await callerOf(bearer(await sign(key1, { sub: 'user-42' })))).toEqual({ userId: 'user-42', roles: ['USER'] });
    expect(jwks.requests).toBe(1);
  });

  it('accepts a token signed with a key identity published after the key set was cached', async () => {
    // Production keeps the 30 s default: with no cooldown every token naming an unknown kid
    // would cost identity one JWKS request, which a forger can repeat at will. The price is
    // that a new-key token arriving within 30 s of the last fetch is refused until then; the
    // test sets 0 so it need not wait out that window to see the refetch.
    const callerOf = verifier(0);
    expect(await callerOf(bearer(await sign(key1)))).toEqual({ userId: 'user-1', roles: ['USER'] });
    expect(jwks.requests).toBe(1);

    jwks.publish(key1, key2);
    expect(await callerOf(bearer(await sign(key2, { sub: 'user-2' })))).toEqual({ userId: 'user-2', roles: ['USER'] });
    expect(jwks.requests).toBe(2);
    // Key 1 stays valid after the refetch: tokens issued before the rotation still verify.
    expect(await callerOf(bearer(await sign(key1)))).toEqual({ userId: 'user-1', roles: ['USER'] });
    expect(jwks.requests).toBe(2);
  });

  describe('under a flood of unknown key ids', () => {
    // Only Date is faked: jose measures the cooldown with Date.now(), while the HTTP server and
    // fetch need real timers.
    afterEach(() => vi.useRealTimers());

    it('refetches the key set at most once per cooldown (default 30 s)', async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      const callerOf = verifier();
      const flood = async () => {
        const tokens = await Promise.all(Array.from({ length: 25 }, () => sign(key1, { kid: randomBytes(8).toString('base64url') })));
        // Concurrently, so a missing single-flight guard would show up as one fetch per token.
        return Promise.all(tokens.map((t) => callerOf(bearer(t))));
      };

      expect(await callerOf(bearer(await sign(key1)))).toMatchObject({ userId: 'user-1' });
      expect(jwks.requests).toBe(1);

      // Within the cooldown of that fetch: no refetch at all.
      for (const caller of await flood()) expect(caller).toEqual({ userId: null, roles: [], authError: INVALID });
      expect(jwks.requests).toBe(1);

      // Once the cooldown has passed: the first unknown kid refetches, the rest of the flood
      // shares that fetch or falls inside the new cooldown.
      vi.setSystemTime(Date.now() + 31_000);
      for (const caller of await flood()) expect(caller).toEqual({ userId: null, roles: [], authError: INVALID });
      expect(jwks.requests).toBe(2);
    });
  });

  it('leaves a caller without Authorization anonymous and never fetches the key set', async () => {
    const callerOf = verifier();
    expect(await callerOf(undefined)).toEqual({ userId: null, roles: [] });
    expect(await callerOf('')).toEqual({ userId: null, roles: [] });
    expect(jwks.requests).toBe(0);
  });

  it('leaves the caller anonymous, with the reason, when the token is not acceptable', async () => {
    const callerOf = verifier();
    const forger = await newKey(key1.kid); // same kid as the published key, other private key
    const header = (obj: object) => Buffer.from(JSON.stringify(obj)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const unsigned = `${header({ alg: 'none', typ: 'at+jwt', kid: key1.kid })}.${header({ sub: 'admin', iss: ISSUER, aud: AUDIENCE, exp: now + 300, roles: ['ADMIN'] })}.`;

    const cases: Record<string, string> = {
      'wrong issuer': bearer(await sign(key1, { iss: 'https://evil.test' })),
      'wrong audience': bearer(await sign(key1, { aud: 'another-service' })),
      'alg none': bearer(unsigned),
      garbage: bearer('not.a.jwt'),
      'wrong typ': bearer(await sign(key1, { typ: 'JWT' })),
      'forged signature': bearer(await sign(forger)),
      'not a bearer token': 'Basic dXNlcjpwYXNz',
    };
    for (const [name, authorization] of Object.entries(cases)) {
      const caller = await callerOf(authorization);
      expect(caller, name).toMatchObject({ userId: null, roles: [] });
      expect(caller.authError, name).toBeTruthy();
    }
    expect((await callerOf(cases['wrong issuer'])).authError).toBe(INVALID);

    const expired = await callerOf(bearer(await sign(key1, { expiresIn: -60 })));
    expect(expired).toMatchObject({ userId: null, roles: [] });
    expect(expired.authError).toContain('expired');
  });

  it('keeps only the USER and ADMIN roles a user token claims: never SERVICE', async () => {
    const callerOf = verifier();
    expect(await callerOf(bearer(await sign(key1, { roles: ['ROOT', 'USER', 'SERVICE', 'ADMIN', 42] })))).toEqual({ userId: 'user-1', roles: ['USER', 'ADMIN'] });
    expect(await callerOf(bearer(await sign(key1, { roles: ['SERVICE'] })))).toEqual({ userId: 'user-1', roles: [] });
    expect(await callerOf(bearer(await sign(key1, { roles: 'ADMIN' })))).toEqual({ userId: 'user-1', roles: [] });
  });

  describe('guest tokens', () => {
    const TEMPLATE = '7d4c1a52-7b3e-4f0e-9a51-3c2b8e6f0a11';
    const guest = (opts: TokenOptions = {}) => sign(key1, { sub: 'participant-1', roles: ['GUEST'], scope: `collaboration:${TEMPLATE}`, ...opts });

    it('makes a GUEST token a guest of its one template, with no user', async () => {
      const callerOf = verifier();
      expect(await callerOf(bearer(await guest()))).toEqual({ userId: null, roles: ['GUEST'], guest: { participantId: 'participant-1', templateId: TEMPLATE } });
      // Roles nobody grants are ignored, as in a user's token; SERVICE with them.
      expect(await callerOf(bearer(await guest({ roles: ['GUEST', 'SERVICE', 'ROOT'] })))).toEqual({
        userId: null,
        roles: ['GUEST'],
        guest: { participantId: 'participant-1', templateId: TEMPLATE },
      });
    });

    it('refuses a GUEST token whose scope is not exactly collaboration:<uuid>', async () => {
      const callerOf = verifier();
      const scopes: unknown[] = [undefined, '', 'collaboration:', 'collaboration:*', 'collaboration:not-a-uuid', `collaboration:${TEMPLATE} extra`, ` collaboration:${TEMPLATE}`, `story:${TEMPLATE}`, TEMPLATE, [`collaboration:${TEMPLATE}`], { templateId: TEMPLATE }];
      for (const scope of scopes) {
        expect(await callerOf(bearer(await guest({ scope }))), JSON.stringify(scope) ?? 'no scope').toEqual({ userId: null, roles: [], authError: INVALID });
      }
    });

    it('refuses a token that is both a guest and a user (or an admin)', async () => {
      const callerOf = verifier();
      for (const roles of [['GUEST', 'USER'], ['USER', 'GUEST'], ['GUEST', 'ADMIN']]) {
        expect(await callerOf(bearer(await guest({ roles }))), roles.join('+')).toEqual({ userId: null, roles: [], authError: INVALID });
      }
    });

    it('treats a user token with a scope claim as the user it names: scope means nothing without GUEST', async () => {
      const callerOf = verifier();
      expect(await callerOf(bearer(await sign(key1, { scope: `collaboration:${TEMPLATE}` })))).toEqual({ userId: 'user-1', roles: ['USER'] });
    });
  });

  // Well under jose's 5 s fetch timeout: a refused connection must fail at once, not time out.
  it('answers 503 SERVICE_UNAVAILABLE when the key set cannot be fetched', { timeout: 2_000 }, async () => {
    const down = await new JwksServer().listen();
    const jwksUrl = down.url;
    await down.close(); // nothing listens on that port now: the connection is refused
    const callerOf = createTokenVerifier({ jwksUrl, issuer: ISSUER, audience: AUDIENCE });

    const error = await callerOf(bearer(await sign(key1))).then(
      () => expect.unreachable('callerOf resolved'),
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(GraphQLError);
    expect((error as GraphQLError).extensions).toMatchObject({ code: 'SERVICE_UNAVAILABLE', http: { status: 503 } });
  });
});
