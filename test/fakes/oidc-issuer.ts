import { generateKeyPair, SignJWT } from 'jose';
import { OAuth2Server } from 'oauth2-mock-server';

export interface FakeOidcIssuer {
  /** The `iss` of tokens signed by signIdToken (override with an `iss` claim). */
  issuerUrl: string;
  jwksUrl: string;
  /** A token signed by the issuer's published RS256 key; `claims` override iss/iat/exp/nbf. */
  signIdToken(claims: Record<string, unknown>, opts?: { expiresInSeconds?: number }): Promise<string>;
  /** Same shape and kid as a real token, but signed by a key the JWKS never published. */
  signWithForeignKey(claims: Record<string, unknown>): Promise<string>;
  stop(): Promise<void>;
}

/**
 * A Google/Microsoft stand-in on loopback: oauth2-mock-server serves discovery and `/jwks`;
 * tokens are built in-process with its issuer (no HTTP token flow needed for idToken tests).
 */
export async function startFakeOidcIssuer(): Promise<FakeOidcIssuer> {
  const server = new OAuth2Server();
  const key = await server.issuer.keys.generate('RS256');
  await server.start(0, '127.0.0.1');
  // The mock names loopback hosts "localhost", which may resolve to ::1 first; pin IPv4.
  const issuerUrl = `http://127.0.0.1:${server.address().port}`;
  server.issuer.url = issuerUrl;

  return {
    issuerUrl,
    jwksUrl: `${issuerUrl}/jwks`,
    signIdToken: (claims, opts) =>
      server.issuer.buildToken({
        kid: key.kid,
        expiresIn: opts?.expiresInSeconds ?? 3600,
        // A transform (rather than a scope) lets tests set any claim, including `iss`.
        scopesOrTransform: (_header, payload) => Object.assign(payload, claims),
      }),
    async signWithForeignKey(claims) {
      const { privateKey } = await generateKeyPair('RS256');
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ iss: issuerUrl, iat: now, exp: now + 3600, ...claims })
        .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: key.kid })
        .sign(privateKey);
    },
    stop: () => server.stop(),
  };
}
