import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { pipeline } from 'node:stream/promises';
import { sendError } from '../platform/http/graphql-http.js';
import type { Handler } from '../platform/http/server.js';
import type { Logger } from '../platform/log.js';

const REQUEST_HEADERS = ['content-type', 'content-length', 'range', 'if-range', 'accept'];
const RESPONSE_HEADERS = ['content-type', 'content-length', 'content-range', 'accept-ranges', 'cache-control', 'content-disposition', 'x-content-type-options', 'connection'];

/**
 * `/media/<subgraph>/<path>` → `<subgraph>/media/<path>`: uploads (PUT to a one-time link) and
 * signed downloads reach the subgraph that owns the media through the one public endpoint,
 * streamed both ways. The subgraph checks the link's signature; the gateway only routes.
 */
export function mediaProxy(subgraphUrls: Record<string, string>, logger: Logger): Handler {
  return async (req, res) => {
    const match = /^\/media\/([a-z]+)(\/.*)$/.exec(req.url ?? '');
    const base = match && Object.hasOwn(subgraphUrls, match[1]!) ? subgraphUrls[match[1]!] : undefined;
    if (!match || !base) return sendError(res, 404, 'NOT_FOUND', 'No such media');
    const target = new URL(`/media${match[2]}`, base);
    const headers: Record<string, string> = {};
    for (const name of REQUEST_HEADERS) {
      const value = req.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    await new Promise<void>((resolve) => {
      const upstream = (target.protocol === 'https:' ? httpsRequest : httpRequest)(target, { method: req.method, headers }, (response) => {
        const forwarded: Record<string, string | string[]> = {};
        for (const name of RESPONSE_HEADERS) {
          const value = response.headers[name];
          if (value !== undefined) forwarded[name] = value;
        }
        res.writeHead(response.statusCode ?? 502, forwarded);
        pipeline(response, res).then(resolve, () => resolve());
      });
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
