import { RemoteGraphQLDataSource } from '@apollo/gateway';
import type { Logger } from '../platform/log.js';
import { CircuitBreaker, type CircuitState, type Permit } from './circuit-breaker.js';
import { subgraphTimeout, subgraphUnavailable } from './errors.js';
import type { GatewayContext } from './gateway.js';

type Fetcher = RemoteGraphQLDataSource['fetcher'];
type FetcherRequestInit = NonNullable<Parameters<Fetcher>[1]>;
type WillSendRequest = NonNullable<RemoteGraphQLDataSource<GatewayContext>['willSendRequest']>;

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

export interface SubgraphGuardOptions {
  /** The subgraph's name in the supergraph: clients see it in errors, operators in logs. */
  name: string;
  /** The longest a call may take, the whole answer read. */
  timeoutMs: number;
  /** Consecutive failures that open the circuit (default 5). */
  failureThreshold?: number;
  /** How long an open circuit fails fast before one trial call (default 10,000). */
  resetMs?: number;
  logger: Logger;
  onStateChange?: (subgraph: string, state: CircuitState) => void;
  onFetch?: (report: FetchReport) => void;
  /** The breaker's clock (tests). */
  now?: () => number;
  /** Defaults to Node's global fetch, whose pool keeps connections to each subgraph alive. */
  fetch?: typeof globalThis.fetch;
}

export interface SubgraphSourceOptions extends SubgraphGuardOptions {
  /** The subgraph's GraphQL endpoint (…/graphql). */
  url: string;
  /** Called before each request, as RemoteGraphQLDataSource's: to sign the caller into headers. */
  willSendRequest?: WillSendRequest;
}

/**
 * RemoteGraphQLDataSource behind a timeout and a circuit breaker. A failed call throws a coded
 * GraphQLError naming the subgraph (SUBGRAPH_UNAVAILABLE, SUBGRAPH_TIMEOUT); the gateway then
 * answers what the other subgraphs gave, with null (propagated per nullability) where this
 * one's part would have been.
 */
export class SubgraphDataSource extends RemoteGraphQLDataSource<GatewayContext> {
  readonly breaker: CircuitBreaker;

  constructor(options: SubgraphSourceOptions) {
    super({ url: options.url, ...(options.willSendRequest ? { willSendRequest: options.willSendRequest } : {}) });
    const guarded = guardedFetcher(options);
    this.breaker = guarded.breaker;
    this.fetcher = guarded.fetcher;
  }
}

/**
 * The fetcher under the data source: the hook RemoteGraphQLDataSource offers that sees every
 * call's transport outcome (sendRequest is private). It reads the whole body before answering,
 * so the deadline covers a subgraph that sends headers and then stalls, and the breaker learns
 * the outcome of the full exchange.
 */
export function guardedFetcher(options: SubgraphGuardOptions): { fetcher: Fetcher; breaker: CircuitBreaker } {
  const { name: subgraph, timeoutMs, logger } = options;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new RangeError(`timeoutMs of ${subgraph} must be a positive integer`);
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const breaker = new CircuitBreaker({
    name: subgraph,
    failureThreshold: options.failureThreshold ?? 5,
    resetMs: options.resetMs ?? 10_000,
    logger,
    ...(options.now ? { now: options.now } : {}),
    ...(options.onStateChange ? { onStateChange: options.onStateChange } : {}),
  });
  const report = (outcome: FetchOutcome, durationMs: number, status?: number) => {
    try {
      options.onFetch?.({ subgraph, durationMs, outcome, ...(status === undefined ? {} : { status }) });
    } catch (error) {
      logger.error({ err: error, subgraph }, 'onFetch failed');
    }
  };

  const fetcher: Fetcher = async (url, init = {}) => {
    const permit = breaker.tryAcquire();
    if (!permit) {
      report('rejected', 0);
      logger.debug({ subgraph }, 'subgraph call refused: circuit open');
      throw subgraphUnavailable(subgraph);
    }
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    const fail = (failure: Permit, outcome: 'error' | 'timeout', details: { err?: unknown; status?: number; body?: string }) => {
      failure.failed();
      report(outcome, elapsed(), details.status);
      // The cause (an address, ECONNREFUSED) is logged here and never sent to the client.
      logger.warn({ subgraph, outcome, durationMs: elapsed(), timeoutMs, circuit: breaker.state, ...details }, 'subgraph call failed');
    };

    // RemoteGraphQLDataSource (2.14) passes no signal of its own; the deadline is the only one.
    // A timer cleared on completion rather than AbortSignal.timeout, whose timer lives on for
    // the full timeoutMs after every call: thousands of them at a busy gateway's rate.
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), timeoutMs);
    let answer: Answer;
    try {
      answer = await exchange(fetchImpl, url, init, deadline.signal);
    } catch (error) {
      const timedOut = deadline.signal.aborted;
      fail(permit, timedOut ? 'timeout' : 'error', { err: error });
      throw timedOut ? subgraphTimeout(subgraph, timeoutMs) : subgraphUnavailable(subgraph);
    } finally {
      clearTimeout(timer);
    }
    if (answer.status >= 500) {
      fail(permit, 'error', { status: answer.status, body: answer.body.slice(0, 500) });
      throw subgraphUnavailable(subgraph);
    }
    permit.succeeded();
    report('ok', elapsed(), answer.status);
    return toResponse(answer);
  };
  return { fetcher, breaker };
}

interface Answer {
  status: number;
  statusText: string;
  headers: Headers;
  body: string;
}

async function exchange(fetchImpl: typeof globalThis.fetch, url: string, init: FetcherRequestInit, signal: AbortSignal): Promise<Answer> {
  const response = await fetchImpl(url, { method: init.method, headers: init.headers, body: init.body, signal });
  const body = await response.text();
  return { status: response.status, statusText: response.statusText, headers: response.headers, body };
}

// Statuses whose Response may not carry a body (the constructor throws otherwise).
const NULL_BODY_STATUSES = new Set([204, 205, 304]);

function toResponse(answer: Answer): Response {
  const body = NULL_BODY_STATUSES.has(answer.status) ? null : answer.body;
  return new Response(body, { status: answer.status, statusText: answer.statusText, headers: answer.headers });
}
