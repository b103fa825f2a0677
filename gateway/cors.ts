import type { Handler } from '../platform/http/server.js';

const ALLOWED_HEADERS = 'authorization, content-type, range, apollo-require-preflight, x-apollo-operation-name, x-correlation-id';

/**
 * CORS for browsers: the web app, and explorers on other origins (Apollo Sandbox; ours is
 * same-origin, at GET /graphql), call the gateway from other origins. Tokens travel in the Authorization header, never
 * in cookies, so no credentials are allowed and `*` is a safe default; CORS_ORIGINS narrows it.
 * CSRF prevention still holds: a cross-origin request must be preflighted to be answered.
 */
export function withCors(handler: Handler, origins: readonly string[]): Handler {
  const any = origins.length === 0 || origins.includes('*');
  return async (req, res) => {
    const origin = req.headers.origin;
    const allowed = origin !== undefined && (any || origins.includes(origin.toLowerCase()));
    if (allowed) {
      res.setHeader('access-control-allow-origin', any ? '*' : origin);
      // Retry-After: a web app told 429 by the rate limits reads when to try again.
      res.setHeader('access-control-expose-headers', 'x-correlation-id, retry-after');
    }
    if (!any) res.setHeader('vary', 'Origin');
    if (req.method === 'OPTIONS') {
      if (allowed) {
        res.setHeader('access-control-allow-methods', 'GET, HEAD, POST, PUT, OPTIONS');
        res.setHeader('access-control-allow-headers', ALLOWED_HEADERS);
        res.setHeader('access-control-max-age', '600');
      }
      res.writeHead(204).end();
      return;
    }
    return handler(req, res);
  };
}
