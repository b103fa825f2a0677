import type { IncomingMessage, ServerResponse } from 'node:http';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BodyTooLargeError } from '../platform/http/body.js';
import { sendError } from '../platform/http/graphql-http.js';
import type { Handler } from '../platform/http/server.js';
import type { Logger } from '../platform/log.js';

/** How long a subgraph may take to start answering. */
const UPSTREAM_TIMEOUT_MS = 30_000;

/** One public prefix that the gateway forwards, unchanged, to the subgraph named in the path. */
export interface ForwardSpec {
  /** The public route, ending in '/': `/media/` serves `/media/<subgraph>/<path>`. */
  prefix: string;
  /** Where `<path>` lands on the subgraph: `/media` → `<subgraph>/media/<path>`. */
  upstreamPrefix: string;
  /** What the route is called in errors and logs. */
  label: string;
  /** Methods forwarded; any other is a 405. Every method when left out. */
  methods?: readonly string[];
  /** Request headers passed to the subgraph; no other reaches it. */
  requestHeaders: readonly string[];
  /** Response headers passed back; no other reaches the caller. */
  responseHeaders: readonly string[];
  /** Largest request body forwarded, counted while streaming; larger is a 413. Unlimited when left out. */
  maxBodyBytes?: number;
}

const MEDIA: ForwardSpec = {
  prefix: '/media/',
  upstreamPrefix: '/media',
  label: 'media',
  requestHeaders: ['content-type', 'content-length', 'range', 'if-range', 'accept'],
  responseHeaders: ['content-type', 'content-length', 'content-range', 'accept-ranges', 'cache-control', 'content-disposition', 'x-content-type-options'],
};

const WEBHOOKS: Omit<ForwardSpec, 'maxBodyBytes'> = {
  prefix: '/webhooks/',
  upstreamPrefix: '/webhooks',
  label: 'webhook',
  methods: ['POST'],
  requestHeaders: [
    'content-type',
    'content-length',
    'user-agent',
    'x-twilio-signature',
    'x-twilio-email-event-webhook-signature',
    'x-twilio-email-event-webhook-timestamp',
    'messagebird-signature-jwt',
    'x-correlation-id',
  ],
  responseHeaders: ['content-type', 'content-length'],
};

/**
 * `/media/<subgraph>/<path>` → `<subgraph>/media/<path>`: uploads (PUT to a one-time link) and
 * signed downloads reach the subgraph that owns the media through the one public endpoint,
 * streamed both ways. The subgraph checks the link's signature; the gateway only routes.
 */
export function mediaProxy(subgraphUrls: Record<string, string>, logger: Logger): Handler {
  return subgraphProxy(MEDIA, subgraphUrls, logger);
}

/**
 * `/webhooks/<subgraph>/<path>?query` → `<subgraph>/webhooks/<path>?query`: provider callbacks
 * (POST only) reach the subgraph that registered them. The body passes byte for byte, since
 * providers sign the raw body; the subgraph checks the signature, the gateway only routes.
 */
export function webhookProxy(subgraphUrls: Record<string, string>, logger: Logger, maxBodyBytes: number): Handler {
  return subgraphProxy({ ...WEBHOOKS, maxBodyBytes }, subgraphUrls, logger);
}

function refuseTooLarge(req: IncomingMessage, res: ServerResponse, limit: number): void {
  // The rest of the body is read and dropped, and the connection closed after the answer.
  res.setHeader('connection', 'close');
  sendError(res, 413, 'PAYLOAD_TOO_LARGE', new BodyTooLargeError(limit).message);
  req.resume();
}

/** Forwards `<prefix><subgraph>/<path>?query` to `<subgraph base><upstreamPrefix>/<path>?query`, streamed both ways. */
export function subgraphProxy(spec: ForwardSpec, subgraphUrls: Record<string, string>, logger: Logger): Handler {
  const escaped = spec.prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const pattern = new RegExp(`^${escaped}([a-z]+)(/[^?#]*)(\\?[^#]*)?$`);
  const notFound = `No such ${spec.label}`;
  const limit = spec.maxBodyBytes;
  return async (req, res) => {
    const raw = req.url ?? '';
    const match = pattern.exec(raw);
    const base = match && Object.hasOwn(subgraphUrls, match[1]!) ? subgraphUrls[match[1]!] : undefined;
    // Dot segments (also encoded: URL resolves %2e%2e) and backslashes would lead out of the prefix.
    if (!match || !base || /(^|\/)(\.|%2e){1,2}(\/|$)|\\|%5c/i.test(match[2]!)) return sendError(res, 404, 'NOT_FOUND', notFound);
    const target = new URL(base);
    target.pathname = `${spec.upstreamPrefix}${match[2]}`;
    target.search = match[3] ?? '';
    if (!target.pathname.startsWith(`${spec.upstreamPrefix}/`)) return sendError(res, 404, 'NOT_FOUND', notFound);
    if (spec.methods && !spec.methods.includes(req.method ?? '')) {
      res.setHeader('allow', spec.methods.join(', '));
      return sendError(res, 405, 'METHOD_NOT_ALLOWED', `${req.method} is not allowed here`);
    }
    // A declared length over the limit is refused before the subgraph is contacted.
    if (limit !== undefined && Number(req.headers['content-length'] ?? NaN) > limit) return refuseTooLarge(req, res, limit);
    const headers: Record<string, string> = {};
    for (const name of spec.requestHeaders) {
      const value = req.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    await new Promise<void>((resolve) => {
      let tooLarge = false;
      const upstream = (target.protocol === 'https:' ? httpsRequest : httpRequest)(target, { method: req.method, headers, timeout: UPSTREAM_TIMEOUT_MS }, (response) => {
        const forwarded: Record<string, string | string[]> = {};
        for (const name of spec.responseHeaders) {
          const value = response.headers[name];
          if (value !== undefined) forwarded[name] = value;
        }
        res.writeHead(response.statusCode ?? 502, forwarded);
        pipeline(response, res).then(resolve, () => resolve());
      });
      upstream.on('timeout', () => upstream.destroy(new Error(`the ${spec.label} service took too long`)));
      upstream.on('error', (error) => {
        if (tooLarge && limit !== undefined) {
          if (!res.headersSent) refuseTooLarge(req, res, limit);
          else res.destroy();
        } else {
          logger.warn({ err: error, target: target.pathname }, `${spec.label} request failed upstream`);
          if (!res.headersSent) sendError(res, 502, 'BAD_GATEWAY', `The ${spec.label} service did not answer`);
          else res.destroy();
          // A body the subgraph never took is dropped, so the connection stays usable.
          if (limit !== undefined) req.resume();
        }
        resolve();
      });
      if (limit === undefined) {
        // The client's body (an upload) streams through; a refused upload ends it early.
        pipeline(req, upstream).catch(() => upstream.destroy());
        return;
      }
      // Counted on the way through: past the limit the subgraph's request is destroyed mid-body
      // (it never sees a complete request) and the caller gets a 413. The client's request is
      // piped rather than put in the pipeline, so that failing it does not drop the connection
      // before the answer is written.
      let seen = 0;
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          seen += chunk.length;
          if (seen <= limit) return callback(null, chunk);
          tooLarge = true;
          callback(new BodyTooLargeError(limit));
        },
      });
      req.on('close', () => {
        if (!req.complete) counter.destroy(new Error('the client went away'));
      });
      req.pipe(counter);
      pipeline(counter, upstream).catch(() => upstream.destroy());
    });
  };
}
