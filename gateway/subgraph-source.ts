import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { urlToHttpOptions } from 'node:url';
import type { GraphQLDataSource, GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import { GraphQLError, OperationTypeNode } from 'graphql';
import { HEADER } from '../platform/internal-auth.js';
import type { Logger } from '../platform/log.js';
import { CircuitBreaker, type CircuitState, type Permit } from './circuit-breaker.js';
import { subgraphTimeout, subgraphUnavailable } from './errors.js';
import type { GatewayContext } from './gateway.js';

type ProcessOptions = GraphQLDataSourceProcessOptions<GatewayContext>;
type SubgraphResponse = Awaited<ReturnType<GraphQLDataSource['process']>>;
type FetcherHeaders = NonNullable<ProcessOptions['request']['http']>['headers'];

/** Called before each call, as RemoteGraphQLDataSource's: `request.http.headers` is where to sign the caller in. */
export type WillSendRequest = (options: ProcessOptions) => void | Promise<void>;

/**
 * ok: the subgraph answered (a 4xx too: the service is up, the request was at fault);
 * error: unreachable or a 5xx; timeout: no whole answer within timeoutMs; rejected: the
 * circuit was open and nothing was sent.
 */
export type FetchOutcome = 'ok' | 'error' | 'timeout' | 'rejected';

export interface FetchReport {
  subgraph: string;
  durationMs: number;
  outcome: FetchOutcome;
  /** The HTTP status, when the subgraph answered. */
  status?: number;
}

export interface SubgraphSourceOptions {
  /** The subgraph's name in the supergraph: clients see it in errors, operators in logs. */
  name: string;
  /** The subgraph's GraphQL endpoint (…/graphql), http:// or https://. */
  url: string;
  /** The longest a call may take, the whole answer read. */
  timeoutMs: number;
  /** Consecutive failures that open the circuit (default 5). */
  failureThreshold?: number;
  /** How long an open circuit fails fast before one trial call (default 10,000). */
  resetMs?: number;
  /** Identical queries in flight at once share one call (default true). */
  dedupe?: boolean;
  /** Callers' writes, shared by every subgraph's source: a query never shares a call begun before its caller's last mutation. */
  writes?: WriteEpochs;
  /** Connections kept to the subgraph at most; calls beyond wait for one, within their deadline (default 128). */
  maxSockets?: number;
  logger: Logger;
  willSendRequest?: WillSendRequest;
  onStateChange?: (subgraph: string, state: CircuitState) => void;
  /** Each call sent (or refused by the open circuit): what the breaker saw. */
  onFetch?: (report: FetchReport) => void;
  /** Each call that shared an identical one in flight instead of being sent (no onFetch for it). */
  onShared?: (subgraph: string) => void;
  /** The breaker's clock (tests). */
  now?: () => number;
}

/**
 * @apollo/gateway's data source for one subgraph, behind a timeout and a circuit breaker. A
 * failed call throws a coded GraphQLError naming the subgraph (SUBGRAPH_UNAVAILABLE,
 * SUBGRAPH_TIMEOUT); the gateway then answers what the other subgraphs gave, with null
 * (propagated per nullability) where this one's part would have been.
 *
 * Our own rather than RemoteGraphQLDataSource, which spent half the gateway's CPU per call on
 * node-fetch Headers and Request objects, Node's fetch (web streams, abort signals) and a
 * Response rebuilt to reach its parser: this is node:http on a keep-alive agent, the body read
 * whole and parsed once.
 */
export class SubgraphDataSource implements GraphQLDataSource<GatewayContext> {
  readonly breaker: CircuitBreaker;
  private readonly target: Target;
  private readonly dedupe: boolean;
  private readonly inFlight = new Map<string, Promise<Exchange>>();
  private readonly writes: WriteEpochs;

  constructor(private readonly options: SubgraphSourceOptions) {
    const { name, timeoutMs } = options;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new RangeError(`timeoutMs of ${name} must be a positive integer`);
    this.target = targetOf(options.url, options.maxSockets ?? 128);
    this.dedupe = options.dedupe ?? true;
    this.writes = options.writes ?? new WriteEpochs();
    this.breaker = new CircuitBreaker({
      name,
      failureThreshold: options.failureThreshold ?? 5,
      resetMs: options.resetMs ?? 10_000,
      logger: options.logger,
      ...(options.now ? { now: options.now } : {}),
      ...(options.onStateChange ? { onStateChange: options.onStateChange } : {}),
    });
  }

  async process(options: ProcessOptions): Promise<SubgraphResponse> {
    const { request } = options;
    // As RemoteGraphQLDataSource: the headers the gateway gave (ftv1 tracing), then ours, then the hook's.
    const given = new PlainHeaders();
    if (request.http?.headers) for (const [name, value] of request.http.headers) given.append(name, value);
    given.set('content-type', 'application/json');
    request.http = { method: 'POST', url: this.options.url, headers: given };
    await this.options.willSendRequest?.(options);
    if (!request.query) throw new Error('Missing query');

    // The signature binds query and variables as this JSON carries them (platform/internal-auth.ts).
    const body = JSON.stringify({ query: request.query, variables: request.variables, operationName: request.operationName, extensions: request.extensions });
    const headers: Record<string, string> = {};
    for (const [name, value] of request.http.headers) headers[name.toLowerCase()] = value;
    // Only a call of an incoming query is shared or sent again: every fetch of a query's plan
    // reads. A mutation's fetches (its entity reads too), health checks and anything else are
    // sent once, as they are.
    const query = 'incomingRequestContext' in options && options.incomingRequestContext.operation?.operation === OperationTypeNode.QUERY;
    const caller = headers[HEADER.caller] ?? '';
    let exchange: Exchange;
    if (query) {
      exchange = await (this.dedupe ? this.shared(body, headers, this.writes.of(caller)) : this.call(body, headers, true));
    } else {
      // Before and after: a query begun meanwhile may have read what the write had not yet done.
      this.writes.bump(caller);
      exchange = await this.call(body, headers, false);
      this.writes.bump(caller);
    }
    const { name: subgraph, timeoutMs } = this.options;
    if ('failure' in exchange) throw exchange.failure === 'timeout' ? subgraphTimeout(subgraph, timeoutMs) : subgraphUnavailable(subgraph);

    const response = this.responseOf(exchange.answer);
    // As RemoteGraphQLDataSource.respond: the subgraph's Cache-Control (from its @cacheControl
    // hints) restricts the whole response's policy, which decides whether it may be kept.
    if ('incomingRequestContext' in options) {
      const policy = options.incomingRequestContext.overallCachePolicy;
      if (policy && 'restrict' in policy) policy.restrict(cacheHintOf(exchange.answer.cacheControl));
    }
    return response;
  }

  /** Closes the kept-alive connections (the gateway stops). */
  close(): void {
    this.target.agent.destroy();
  }

  /**
   * Joins the identical call in flight, else makes it. Identical: the same body (query,
   * variables, operation name) and the same headers but those that differ on every call though
   * the answer does not (the caller's header is kept: another caller may see other data). The
   * call carries the first sharer's correlation id and trace context; the others' traces and
   * logs show no call of their own, only the onShared count.
   */
  private shared(body: string, headers: Record<string, string>, writeEpoch: number): Promise<Exchange> {
    let key = `${writeEpoch}\n${body}`;
    for (const name in headers) if (!PER_CALL_HEADERS.has(name)) key += `\n${name}: ${headers[name]}`;
    const inFlight = this.inFlight.get(key);
    if (inFlight) {
      try {
        this.options.onShared?.(this.options.name);
      } catch (error) {
        this.options.logger.error({ err: error, subgraph: this.options.name }, 'onShared failed');
      }
      return inFlight;
    }
    const call = this.call(body, headers, true);
    this.inFlight.set(key, call);
    const done = () => this.inFlight.delete(key);
    call.then(done, done);
    return call;
  }

  /** One call through the breaker. It never rejects: a failure is an Exchange too, so sharers can each throw their own error. */
  private async call(body: string, headers: Record<string, string>, idempotent: boolean): Promise<Exchange> {
    const { name: subgraph, timeoutMs, logger } = this.options;
    const permit = this.breaker.tryAcquire();
    if (!permit) {
      this.report('rejected', 0);
      logger.debug({ subgraph }, 'subgraph call refused: circuit open');
      return { failure: 'unavailable' };
    }
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    const fail = (failure: Permit, outcome: 'error' | 'timeout', details: { err?: unknown; status?: number; body?: string }) => {
      failure.failed();
      this.report(outcome, elapsed(), details.status);
      // The cause (an address, ECONNREFUSED) is logged here and never sent to the client.
      logger.warn({ subgraph, outcome, durationMs: elapsed(), timeoutMs, circuit: this.breaker.state, ...details }, 'subgraph call failed');
    };
    let answer: Answer;
    try {
      answer = await post(this.target, headers, body, timeoutMs, idempotent);
    } catch (error) {
      const timedOut = error instanceof DeadlineExceeded;
      fail(permit, timedOut ? 'timeout' : 'error', { err: error });
      return { failure: timedOut ? 'timeout' : 'unavailable' };
    }
    if (answer.status >= 500) {
      fail(permit, 'error', { status: answer.status, body: answer.body.slice(0, 500) });
      return { failure: 'unavailable' };
    }
    permit.succeeded();
    this.report('ok', elapsed(), answer.status);
    return { answer };
  }

  private report(outcome: FetchOutcome, durationMs: number, status?: number): void {
    const subgraph = this.options.name;
    try {
      this.options.onFetch?.({ subgraph, durationMs, outcome, ...(status === undefined ? {} : { status }) });
    } catch (error) {
      this.options.logger.error({ err: error, subgraph }, 'onFetch failed');
    }
  }

  /**
   * The caller's own copy of the answer (each sharer parses its own: the gateway merges into
   * it), or its own error: RemoteGraphQLDataSource's.
   */
  private responseOf(answer: Answer): SubgraphResponse {
    const { name: subgraph, url } = this.options;
    if (answer.status < 200 || answer.status > 299) {
      // A 4xx: RemoteGraphQLDataSource's errorFromResponse. Uncoded but for 401 and 403, so the
      // client sees an internal error and the log the subgraph's answer.
      let body: unknown = answer.body;
      if (isJson(answer.contentType)) {
        try {
          body = JSON.parse(answer.body);
        } catch {
          // Kept as text.
        }
      }
      const code = answer.status === 401 ? 'UNAUTHENTICATED' : answer.status === 403 ? 'FORBIDDEN' : undefined;
      throw new GraphQLError(`${answer.status}: ${answer.statusText}`, {
        extensions: { response: { url, status: answer.status, statusText: answer.statusText, body }, ...(code ? { code } : {}) },
      });
    }
    let parsed: unknown = answer.body;
    if (isJson(answer.contentType)) {
      try {
        parsed = JSON.parse(answer.body);
      } catch (error) {
        throw new Error(`invalid json response body from ${subgraph} at ${url}: ${(error as Error).message}`);
      }
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error(`Expected JSON response body, but received: ${answer.body.slice(0, 500)}`);
    return parsed as SubgraphResponse;
  }
}

/** Headers that differ on every call while the answer does not: left out of what makes two calls identical. */
const PER_CALL_HEADERS = new Set<string>([HEADER.timestamp, HEADER.signature, HEADER.correlationId, 'traceparent', 'tracestate', 'baggage']);


const isJson = (contentType: string | undefined) =>
  contentType !== undefined && (contentType.startsWith('application/json') || contentType.startsWith('application/graphql-response+json'));

/** A Cache-Control header as the hint RemoteGraphQLDataSource.respond makes of it (parseCacheControlHeader). */
function cacheHintOf(header: string | undefined): { maxAge: number; scope?: 'PUBLIC' | 'PRIVATE' } {
  const hint: { maxAge: number; scope?: 'PUBLIC' | 'PRIVATE' } = { maxAge: 0 };
  if (!header) return hint;
  const directives: Record<string, string | true> = {};
  for (const part of header.trim().split(/\s*,\s*/)) {
    const [key, value] = part.split(/\s*=\s*/, 2);
    directives[key!] = value === undefined ? true : value.replace(/^"|"$/g, '');
  }
  const maxAge = directives['max-age'];
  if (typeof maxAge === 'string' && /^[0-9]+$/.test(maxAge)) hint.maxAge = Number(maxAge);
  if (directives.private === true) hint.scope = 'PRIVATE';
  if (directives.public === true) hint.scope = 'PUBLIC';
  return hint;
}

/** `request.http.headers` for the hook: a plain map (node-fetch's Headers checked every name and value, at a cost). */
class PlainHeaders implements FetcherHeaders {
  private readonly map = new Map<string, string>();
  append(name: string, value: string): void {
    const key = name.toLowerCase();
    const had = this.map.get(key);
    this.map.set(key, had === undefined ? String(value) : `${had}, ${value}`);
  }
  delete(name: string): void {
    this.map.delete(name.toLowerCase());
  }
  get(name: string): string | null {
    return this.map.get(name.toLowerCase()) ?? null;
  }
  has(name: string): boolean {
    return this.map.has(name.toLowerCase());
  }
  set(name: string, value: string): void {
    this.map.set(name.toLowerCase(), String(value));
  }
  entries() {
    return this.map.entries();
  }
  keys() {
    return this.map.keys();
  }
  values() {
    return this.map.values();
  }
  [Symbol.iterator]() {
    return this.map.entries();
  }
}

/** A call's result, shared by every sharer: each makes its own response or error of it. */
type Exchange = { answer: Answer } | { failure: 'timeout' | 'unavailable' };

interface Answer {
  status: number;
  statusText: string;
  contentType: string | undefined;
  cacheControl: string | undefined;
  body: string;
}

interface Target {
  request: (options: RequestOptions, callback: (res: IncomingMessage) => void) => ClientRequest;
  options: RequestOptions;
  agent: HttpAgent;
}

function targetOf(url: string, maxSockets: number): Target {
  const parsed = new URL(url);
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new RangeError(`${url}: not an http:// or https:// URL`);
  const secure = parsed.protocol === 'https:';
  // LIFO: the busiest sockets stay warm and the spare ones idle out after a burst.
  const agentOptions = { keepAlive: true, maxSockets, scheduling: 'lifo' as const };
  const agent = secure ? new HttpsAgent(agentOptions) : new HttpAgent(agentOptions);
  const { protocol, hostname, port, path, auth } = urlToHttpOptions(parsed);
  return { request: secure ? httpsRequest : httpRequest, agent, options: { protocol, hostname, port, path, auth, method: 'POST', agent } };
}

class DeadlineExceeded extends Error {}

// A kept-alive socket the server closed while it sat idle fails the next request sent on it
// before any answer (Node's agent retires sockets ahead of the server's Keep-Alive timeout
// hint, but the race remains without one). A reset on a reused socket before any answer may
// also be a subgraph that died while running the request: so only a query, which reads, is
// sent once more (on another socket); a mutation never is.
const STALE_SOCKET = new Set(['ECONNRESET', 'EPIPE']);

/**
 * POSTs the body and reads the whole answer. The deadline covers the wait for a socket, the
 * answer's headers and all of its body, so a subgraph that sends headers and then stalls times
 * out too; the request is then destroyed.
 */
function post(target: Target, headers: Record<string, string>, body: string, timeoutMs: number, idempotent: boolean): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let settled = false;
    let current: ClientRequest | undefined;
    const settle = (error: unknown, answer?: Answer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (answer) resolve(answer);
      else reject(error);
    };
    const timer = setTimeout(() => {
      settle(new DeadlineExceeded(`no whole answer within ${timeoutMs} ms`));
      current?.destroy();
    }, timeoutMs);
    const requestHeaders = { ...headers, 'content-length': String(Buffer.byteLength(body)) };
    const attempt = (mayRetry: boolean) => {
      let answered = false;
      const req = target.request({ ...target.options, headers: requestHeaders }, (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          settle(null, {
            status: res.statusCode ?? 0,
            statusText: res.statusMessage ?? '',
            contentType: res.headers['content-type'],
            cacheControl: res.headers['cache-control'],
            body: chunks.length === 1 ? chunks[0]!.toString() : Buffer.concat(chunks).toString(),
          }),
        );
        res.on('error', (error) => settle(error));
        res.on('close', () => {
          if (!res.complete) settle(new Error('the connection closed before the whole answer'));
        });
      });
      current = req;
      req.on('error', (error: NodeJS.ErrnoException) => {
        if (!settled && !answered && mayRetry && req.reusedSocket && STALE_SOCKET.has(error.code ?? '')) return attempt(false);
        settle(error);
      });
      req.end(body);
    };
    attempt(idempotent);
  });
}

/**
 * Each caller's last write, as a point in one sequence: a query's sharing key holds its
 * caller's, so a query begun after its caller's mutation never joins a call begun before it
 * (read your own writes). Bounded: past `maxCallers` the least recently written caller is
 * dropped, and the floor rises to its point, so a caller not held is at or past every point it
 * ever had.
 */
export class WriteEpochs {
  private readonly last = new Map<string, number>();
  private sequence = 0;
  private floor = 0;

  constructor(private readonly maxCallers = 100_000) {}

  of(caller: string): number {
    return this.last.get(caller) ?? this.floor;
  }

  bump(caller: string): void {
    this.last.delete(caller);
    this.last.set(caller, ++this.sequence);
    if (this.last.size <= this.maxCallers) return;
    const [oldest, point] = this.last.entries().next().value!;
    this.last.delete(oldest);
    this.floor = Math.max(this.floor, point);
  }
}
