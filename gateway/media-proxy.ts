import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { pipeline } from 'node:stream/promises';
import { sendError } from '../platform/http/graphql-http.js';
import type { Handler } from '../platform/http/server.js';
import type { Logger } from '../platform/log.js';

const REQUEST_HEADERS = ['content-type', 'content-length', 'range', 'if-range', 'accept'];
const RESPONSE_HEADERS = ['content-type', 'content-length', 'content-range', 'accept-ranges', 'cache-control', 'content-disposition', 'x-content-type-options'];
/** How long a subgraph may take to start answering. */
const UPSTREAM_TIMEOUT_MS = 30_000;

/**
 * `/media/<subgraph>/<path>` → `<subgraph>/media/<path>`: uploads (PUT to a one-time link) and
 * signed downloads reach the subgraph that owns the media through the one public endpoint,
 * streamed both ways. The subgraph checks the link's signature; the gateway only routes.
 */
export function mediaProxy(subgraphUrls: Record<string, string>, logger: Logger): Handler {
  return async (req, res) => {
    const raw = req.url ?? '';
    const match = /^\/media\/([a-z]+)(\/[^?#]*)(\?[^#]*)?$/.exec(raw);
    const base = match && Object.hasOwn(subgraphUrls, match[1]!) ? subgraphUrls[match[1]!] : undefined;
    // Dot segments (also encoded: URL resolves %2e%2e) and backslashes would lead out of /media/.
    if (!match || !base || /(^|\/)(\.|%2e){1,2}(\/|$)|\\|%5c/i.test(match[2]!)) return sendError(res, 404, 'NOT_FOUND', 'No such media');
    const target = new URL(base);
    target.pathname = `/media${match[2]}`;
    target.search = match[3] ?? '';
    if (!target.pathname.startsWith('/media/')) return sendError(res, 404, 'NOT_FOUND', 'No such media');
    const headers: Record<string, string> = {};
    for (const name of REQUEST_HEADERS) {
      const value = req.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    await new Promise<void>((resolve) => {
      const upstream = (target.protocol === 'https:' ? httpsRequest : httpRequest)(target, { method: req.method, headers, timeout: UPSTREAM_TIMEOUT_MS }, (response) => {
        const forwarded: Record<string, string | string[]> = {};
        for (const name of RESPONSE_HEADERS) {
          const value = response.headers[name];
          if (value !== undefined) forwarded[name] = value;
        }
        res.writeHead(response.statusCode ?? 502, forwarded);
        pipeline(response, res).then(resolve, () => resolve());
      });
      upstream.on('timeout', () => upstream.destroy(new Error('the media service took too long')));
      upstream.on('error', (error) => {
        logger.warn({ err: error, target: target.pathname }, 'media request failed upstream');
        if (!res.headersSent) sendError(res, 502, 'BAD_GATEWAY', 'The media service did not answer');
        else res.destroy();
        resolve();
      });
      // The client's body (an upload) streams through; a refused upload ends it early.
      pipeline(req, upstream).catch(() => upstream.destroy());
    });
  };
}
