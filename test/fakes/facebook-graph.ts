import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

interface IssuedToken {
  user: { id: string; name: string; email?: string };
  valid: boolean;
  appId: string;
  expiresAt: number;
}

export interface FakeFacebook {
  /** Graph base URL with a version segment, like the real https://graph.facebook.com/v19.0 */
  graphUrl: string;
  /**
   * A user access token. debug_token reports `valid`, `appId` and `expiresAt` (unix seconds, 0 =
   * never) verbatim, so each check of the verifier can be exercised on its own.
   */
  issueToken(user: { id: string; name: string; email?: string }, opts?: { valid?: boolean; appId?: string; expiresAt?: number }): string;
  stop(): Promise<void>;
  /** Path and query of every request received, in order. */
  requests: string[];
}

const send = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' });
  res.end(JSON.stringify(body));
};
// Graph API error shape; 190 is "Invalid OAuth 2.0 Access Token".
const oauthError = (message: string, code = 190) => ({ error: { message, type: 'OAuthException', code } });

/** A fake Facebook Graph API (debug_token and /me) on loopback, speaking the real wire format. */
export async function startFakeFacebook(options: { appId: string; appSecret: string }): Promise<FakeFacebook> {
  const tokens = new Map<string, IssuedToken>();
  const requests: string[] = [];

  const server = createServer((req, res) => {
    requests.push(req.url ?? '');
    const url = new URL(req.url ?? '/', 'http://fake');
    const q = url.searchParams;
    if (req.method !== 'GET') return send(res, 405, oauthError('Unsupported method', 100));

    if (url.pathname === '/v19.0/debug_token') {
      if (q.get('access_token') !== `${options.appId}|${options.appSecret}`) {
        return send(res, 400, oauthError('Invalid OAuth access token signature.'));
      }
      const issued = tokens.get(q.get('input_token') ?? '');
      // Real Graph answers 200 with is_valid:false (and a nested error) for tokens it cannot parse.
      if (!issued) {
        return send(res, 200, { data: { is_valid: false, scopes: [], error: { code: 190, message: 'Invalid OAuth access token - Cannot parse access token' } } });
      }
      return send(res, 200, {
        data: { app_id: issued.appId, type: 'USER', application: 'Storyloom', is_valid: issued.valid, user_id: issued.user.id, expires_at: issued.expiresAt, scopes: ['email', 'public_profile'] },
      });
    }

    if (url.pathname === '/v19.0/me') {
      const token = q.get('access_token') ?? '';
      const issued = tokens.get(token);
      if (!issued || !issued.valid || (issued.expiresAt !== 0 && issued.expiresAt * 1000 <= Date.now())) {
        return send(res, 400, oauthError('Invalid OAuth access token - Cannot parse access token'));
      }
      const proof = createHmac('sha256', options.appSecret).update(token).digest('hex');
      if (q.get('appsecret_proof') !== proof) {
        return send(res, 400, { error: { message: 'Invalid appsecret_proof provided in the API argument', type: 'GraphMethodException', code: 100 } });
      }
      // Only the requested fields come back; email is absent when the user has none or denied it.
      const fields = (q.get('fields') ?? 'id,name').split(',');
      const all: Record<string, string | undefined> = { id: issued.user.id, name: issued.user.name, email: issued.user.email };
      return send(res, 200, Object.fromEntries(fields.filter((f) => all[f] !== undefined).map((f) => [f, all[f]])));
    }

    return send(res, 404, oauthError(`Unknown path components: ${url.pathname}`, 2500));
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    graphUrl: `http://127.0.0.1:${port}/v19.0`,
    requests,
    issueToken(user, opts) {
      const token = `EAA${randomBytes(24).toString('hex')}`;
      tokens.set(token, {
        user,
        valid: opts?.valid ?? true,
        appId: opts?.appId ?? options.appId,
        expiresAt: opts?.expiresAt ?? Math.floor(Date.now() / 1000) + 3600,
      });
      return token;
    },
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections(); // fetch keeps connections alive; don't wait for them to idle out
      }),
  };
}
