import type { IncomingMessage, ServerResponse } from 'node:http';
import { HeaderMap, type ApolloServer, type BaseContext, type HTTPGraphQLResponse } from '@apollo/server';
import type { Logger } from '../log.js';
import { ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { contextFrom, inSpan, SpanKind } from '../telemetry/tracing.js';
import { BodyTooLargeError, readBody } from './body.js';

/**
 * Thrown by a `before` or `admit` hook: the request is answered with this status, code and
 * headers (Retry-After, say), unexecuted.
 */
export class HttpRefusal extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/**
 * A JSON error response in the GraphQL-over-HTTP shape, for failures before GraphQL runs. No
 * cache keeps it (a 404 or 405 is heuristically cacheable otherwise) unless `headers` says so.
 */
export function sendError(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({ errors: [{ message, extensions: { code } }] });
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...headers });
  res.end(body);
}

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

/**
 * What the answer to a GET depends on besides its URL, for caches (RFC 9110 §12.5.5): its media
 * type is negotiated on Accept, and what a caller may see on their Authorization. Not the CSRF
 * headers: without them the answer is a 400 that no cache keeps.
 */
const GET_VARY = ['Accept', 'Authorization'];

/** Adds to the Vary already set (CORS's Origin, the explorer's Accept), each field once. */
function addVary(res: ServerResponse, fields: readonly string[]): void {
  const given = res.getHeader('vary');
  const current = (Array.isArray(given) ? given.join(',') : String(given ?? ''))
    .split(',')
    .map((field) => field.trim())
    .filter(Boolean);
  const known = new Set(current.map((field) => field.toLowerCase()));
  res.setHeader('vary', [...current, ...fields.filter((field) => !known.has(field.toLowerCase()))].join(', '));
}

/** A Content-Type's media type, lowercase, and its charset parameter if any (RFC 9110 §8.3.1). */
function mediaTypeOf(header: string): { essence: string; charset: string | undefined } {
  const [essence = '', ...parameters] = header.split(';');
  const charset = parameters
    .map((parameter) => /^\s*charset\s*=\s*"?([^";\s]*)"?\s*$/i.exec(parameter)?.[1])
    .find((value) => value !== undefined);
  return { essence: essence.trim().toLowerCase(), charset: charset?.toLowerCase() };
}

const JSON_TYPES = new Set(['application/json', 'application/graphql-response+json']);

async function writeResponse(res: ServerResponse, method: string, response: HTTPGraphQLResponse): Promise<void> {
  for (const [key, value] of response.headers) res.setHeader(key, value);
  if (method === 'GET') addVary(res, GET_VARY);
  res.statusCode = response.status ?? 200;
  if (response.body.kind === 'complete') {
    res.end(response.body.string);
    return;
  }
  for await (const chunk of response.body.asyncIterator) res.write(chunk);
  res.end();
}

/**
 * Hands one HTTP request to Apollo Server without a web framework: the body is read under a
 * size limit and parsed here, so oversized or non-JSON bodies get a clear GraphQL-shaped error
 * and never reach the executor.
 */
export function graphqlHandler<C extends BaseContext>(
  apollo: ApolloServer<C>,
  options: {
    maxBodyBytes: number;
    context: (req: IncomingMessage, res: ServerResponse) => Promise<C>;
    /** Runs before the body is read (a per-address rate limit): may refuse with an HttpRefusal. */
    before?: (req: IncomingMessage) => Promise<void> | void;
    /**
     * Decides, once the body is parsed and before anything runs, whether to serve the request
     * at all (refusing with an HttpRefusal); what it returns, if anything, replaces the body (a
     * persisted operation's id becomes its document).
     */
    admit?: (req: IncomingMessage, body: unknown) => Promise<unknown> | unknown;
    logger: Logger;
    /** Who serves, for the request's trace span (`gateway`, or the subgraph's name). */
    service?: string;
    /**
     * What the caller's `traceparent` header is to the request's span: its parent (a subgraph,
     * whose callers are signed), or only a link (the gateway: a public client must not choose
     * the trace, nor whether it is sampled).
     */
    callerTrace?: 'parent' | 'link';
  },
) {
  const service = options.service ?? 'graphql';
  return (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const caller = contextFrom(req.headers);
    const callerSpan = trace.getSpanContext(caller);
    const linked = options.callerTrace === 'link';
    return inSpan(
      `${service} ${req.method ?? 'GET'} /graphql`,
      {
        kind: SpanKind.SERVER,
        parent: linked ? ROOT_CONTEXT : caller,
        links: linked && callerSpan ? [{ context: callerSpan }] : undefined,
        attributes: { 'http.request.method': req.method ?? 'GET', 'url.path': '/graphql', 'storyloom.service': service },
      },
      async (span) => {
        await serve(req, res);
        span.setAttribute('http.response.status_code', res.statusCode);
      },
    );
  };

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      await options.before?.(req);
    } catch (error) {
      return refuse(res, error, { bodyUnread: true });
    }
    let body: unknown;
    if (req.method === 'POST') {
      let raw: Buffer;
      try {
        raw = await readBody(req, options.maxBodyBytes);
      } catch (error) {
        if (error instanceof BodyTooLargeError) {
          res.setHeader('connection', 'close');
          return sendError(res, 413, 'PAYLOAD_TOO_LARGE', error.message);
        }
        throw error;
      }
      const type = mediaTypeOf(req.headers['content-type'] ?? '');
      if (JSON_TYPES.has(type.essence)) {
        // GraphQL over HTTP takes UTF-8 (assumed when no charset is given); JSON in another
        // charset would be misread, so it is refused rather than decoded as UTF-8.
        if (type.charset !== undefined && type.charset !== 'utf-8' && type.charset !== 'utf8') {
          return sendError(res, 415, 'UNSUPPORTED_MEDIA_TYPE', `Request bodies must be UTF-8, not ${type.charset}`);
        }
        try {
          body = raw.length ? JSON.parse(raw.toString('utf8')) : undefined;
        } catch {
          return sendError(res, 400, 'BAD_REQUEST', 'Request body is not valid JSON');
        }
      } else {
        body = raw.toString('utf8');
      }
    }
    try {
      const admitted = await options.admit?.(req, body);
      if (admitted !== undefined) body = admitted;
    } catch (error) {
      return refuse(res, error, { bodyUnread: false });
    }
    const headers = new HeaderMap();
    for (const [key, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers.set(key, Array.isArray(value) ? value.join(', ') : value);
    }
    // Read after `admit`, which may rewrite a GET's URL (a persisted operation's id).
    const url = new URL(req.url ?? '/', 'http://localhost');
    const method = (req.method ?? 'GET').toUpperCase();
    const response = await apollo.executeHTTPGraphQLRequest({
      httpGraphQLRequest: { method, headers, search: url.search, body },
      context: () => options.context(req, res),
    });
    await writeResponse(res, method, response);
  }
}

function refuse(res: ServerResponse, error: unknown, { bodyUnread }: { bodyUnread: boolean }): void {
  if (!(error instanceof HttpRefusal)) throw error;
  // An unread body would be taken for the next request on a kept-alive connection.
  if (bodyUnread && hasBody(res.req)) res.setHeader('connection', 'close');
  sendError(res, error.status, error.code, error.message, error.headers);
}

const hasBody = (req: IncomingMessage) => req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
