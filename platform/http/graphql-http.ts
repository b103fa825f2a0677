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

/** A JSON error response in the GraphQL-over-HTTP shape, for failures before GraphQL runs. */
export function sendError(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({ errors: [{ message, extensions: { code } }] });
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

async function writeResponse(res: ServerResponse, response: HTTPGraphQLResponse): Promise<void> {
  for (const [key, value] of response.headers) res.setHeader(key, value);
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
      const type = req.headers['content-type'] ?? '';
      if (type.includes('application/json') || type.includes('application/graphql-response+json')) {
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
    const url = new URL(req.url ?? '/', 'http://localhost');
    const response = await apollo.executeHTTPGraphQLRequest({
      httpGraphQLRequest: { method: (req.method ?? 'GET').toUpperCase(), headers, search: url.search, body },
      context: () => options.context(req, res),
    });
    await writeResponse(res, response);
  }
}

function refuse(res: ServerResponse, error: unknown, { bodyUnread }: { bodyUnread: boolean }): void {
  if (!(error instanceof HttpRefusal)) throw error;
  // An unread body would be taken for the next request on a kept-alive connection.
  if (bodyUnread) res.setHeader('connection', 'close');
  sendError(res, error.status, error.code, error.message, error.headers);
}
