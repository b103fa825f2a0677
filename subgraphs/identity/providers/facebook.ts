import { createHmac } from 'node:crypto';
import { invalidProviderToken, type ProviderIdentity, type ProviderVerifier } from './provider.js';

export interface FacebookVerifierOptions {
  /** Graph API base including the version, e.g. https://graph.facebook.com/v19.0 */
  graphUrl: string;
  appId: string;
  appSecret: string;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

interface DebugTokenData {
  app_id?: string;
  is_valid?: boolean;
  user_id?: string;
  expires_at?: number;
}

const invalid = (message: string) => invalidProviderToken(message, 'accessToken');

/**
 * Facebook Login hands the client an opaque access token, not an OIDC idToken, so it is checked
 * with the Graph API: /debug_token says whose token it is, /me says who the user is.
 */
export function createFacebookVerifier(options: FacebookVerifierOptions): ProviderVerifier {
  const doFetch = options.fetch ?? globalThis.fetch;
  const timeoutMs = options.timeoutMs ?? 5000;
  const base = options.graphUrl.replace(/\/+$/, '');

  /** GET a Graph URL; null body means Facebook answered 4xx (it rejected a token). */
  async function graphGet(path: string, params: Record<string, string>) {
    const url = `${base}${path}?${new URLSearchParams(params).toString()}`;
    let response: Response;
    try {
      response = await doFetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    } catch (error) {
      throw new Error('FACEBOOK sign-in provider unavailable', { cause: error });
    }
    if (response.status >= 500) throw new Error(`FACEBOOK sign-in provider unavailable (HTTP ${response.status})`);
    const body = (await response.json().catch(() => null)) as Record<string, unknown> | null;
    if (!body || typeof body !== 'object') throw new Error('FACEBOOK sign-in provider sent an unreadable answer');
    return { ok: response.ok, body };
  }

  return {
    async verify(credentials): Promise<ProviderIdentity> {
      const token = credentials.accessToken;
      if (!token) throw invalid('An accessToken is required to sign in with FACEBOOK');

      // An app access token ("id|secret") lets us inspect any user token; it must never reach a log.
      const debug = await graphGet('/debug_token', {
        input_token: token,
        access_token: `${options.appId}|${options.appSecret}`,
      });
      // Facebook answers 200 with is_valid:false for a bad input token; a 4xx here means it
      // rejected OUR app credentials, which is a configuration fault, not the user's.
      if (!debug.ok) throw new Error('FACEBOOK rejected the app credentials on /debug_token');
      const data = (debug.body['data'] ?? {}) as DebugTokenData;
      if (data.is_valid !== true) throw invalid('The FACEBOOK access token is not valid');
      // A token minted for another app must not sign in here (token substitution attack).
      if (String(data.app_id) !== options.appId) throw invalid('The FACEBOOK access token was issued to another app');
      const expiresAt = Number(data.expires_at ?? 0);
      // expires_at is unix seconds; 0 means a long-lived token that never expires.
      if (expiresAt !== 0 && expiresAt * 1000 <= Date.now()) throw invalid('The FACEBOOK access token has expired');
      if (!data.user_id) throw invalid('The FACEBOOK access token has no user');

      // appsecret_proof proves the call comes from the app's server ("Require App Secret" setting).
      const proof = createHmac('sha256', options.appSecret).update(token).digest('hex');
      const me = await graphGet('/me', { fields: 'id,name,email', access_token: token, appsecret_proof: proof });
      if (!me.ok) {
        // Code 190 = the user token became invalid since debug_token; anything else is ours.
        const code = (me.body['error'] as { code?: unknown } | undefined)?.code;
        if (code === 190) throw invalid('The FACEBOOK access token is not valid');
        throw new Error(`FACEBOOK /me failed (error code ${String(code)})`);
      }
      if (String(me.body['id']) !== String(data.user_id)) throw invalid('The FACEBOOK access token does not match its user');

      const email = typeof me.body['email'] === 'string' && me.body['email'] !== '' ? me.body['email'] : null;
      return {
        provider: 'FACEBOOK',
        subject: String(data.user_id),
        email,
        // Facebook only returns an email the user has confirmed with Facebook.
        emailVerified: email !== null,
        name: typeof me.body['name'] === 'string' ? me.body['name'] : null,
      };
    },
  };
}
