/**
 * The HTTP plumbing of the notification providers' fakes (SendGrid, Mailgun, Twilio,
 * MessageBird): a server on a free loopback port, the log of every request, failures queued by
 * failNext, and down/up/stall. Each fake brings only its provider's wire: how a request is read
 * for the log, what it is answered, where a queued failure is spent and how it reads.
 *
 * The video fakes (video-fake.ts) have their own plumbing; the names here are kept apart from theirs.
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What every logged request has; a wire adds its reading of the body. */
export interface ProviderFakeRequest {
  method: string;
  /** Path and query, as sent. */
  path: string;
  headers: IncomingHttpHeaders;
}

export interface ProviderFakeAnswer {
  status: number;
  /** Encoded by the wire's encode(); none: an empty body. */
  body?: unknown;
  headers?: Record<string, string>;
}

/** One provider's wire, for startProviderFake. `R` is its logged request, `F` what failNext queues. */
export interface ProviderFakeWire<R extends ProviderFakeRequest, F> {
  /** The request as logged, from what came in and the raw body. */
  read(request: ProviderFakeRequest, raw: Buffer): R | Promise<R>;
  /**
   * The answer to `request`. `takeFailure` hands out the next failure failNext queued, if any:
   * the wire spends it where the provider would fail (before or after its routing).
   */
  answer(request: R, takeFailure: () => F | undefined): ProviderFakeAnswer | Promise<ProviderFakeAnswer>;
  /** The body's text and content type. Default: JSON, and nothing at all for no body. */
  encode?(body: unknown): { text: string; contentType?: string };
}

export interface ProviderFake<R extends ProviderFakeRequest, F> {
  /** The origin, no trailing slash. */
  readonly url: string;
  /** Every request read, in order, failed and stalled ones included (dropped ones not). */
  readonly requests: R[];
  /** Requests whose connection was cut while down. */
  readonly dropped: number;
  /** Queues `failure` for the next `times` (default 1) requests the wire spends one on. */
  failNext(failure: F, times?: number): void;
  /** Every request's connection is cut before it is read (the host is unreachable), until up(). */
  down(): void;
  /** Ends down() and stall(); requests already stalled stay unanswered until close(). */
  up(): void;
  /** Requests from now on are read and logged, and never answered. */
  stall(): void;
  /** Stops the server, cutting stalled requests and idle connections. */
  close(): Promise<void>;
}

const json = (body: unknown): { text: string; contentType?: string } => (body === undefined ? { text: '' } : { text: JSON.stringify(body), contentType: 'application/json' });

export async function startProviderFake<R extends ProviderFakeRequest, F>(wire: ProviderFakeWire<R, F>): Promise<ProviderFake<R, F>> {
  const requests: R[] = [];
  const failures: F[] = [];
  const encode = wire.encode ?? json;
  let mode: 'up' | 'down' | 'stall' = 'up';
  let dropped = 0;

  const send = (res: ServerResponse, answer: ProviderFakeAnswer) => {
    const { text, contentType } = encode(answer.body);
    res.writeHead(answer.status, { ...(contentType ? { 'content-type': contentType } : {}), 'content-length': Buffer.byteLength(text), ...answer.headers }).end(text);
  };

  const server = createServer((req, res) => {
    if (mode === 'down') {
      // Cut on every request, kept-alive connections included, so that each one counts.
      dropped++;
      req.socket.destroy();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      void (async () => {
        const request = await wire.read({ method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers }, Buffer.concat(chunks));
        requests.push(request);
        if (mode === 'stall') return; // close() destroys the socket
        send(res, await wire.answer(request, () => failures.shift()));
      })().catch((e: unknown) => {
        res.destroy(e instanceof Error ? e : new Error(String(e)));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));

  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    get dropped() {
      return dropped;
    },
    failNext(failure, times = 1) {
      for (let i = 0; i < times; i++) failures.push(failure);
    },
    down() {
      mode = 'down';
    },
    up() {
      mode = 'up';
    },
    stall() {
      mode = 'stall';
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((e) => (e ? reject(e) : resolve()));
        // Stalled requests never finish on their own, and clients keep idle sockets alive.
        server.closeAllConnections();
      }),
  };
}

/* ---- The SMS fakes' controller (Twilio, MessageBird): failures answer any request, as given. ---- */

export interface SmsFakeRequest extends ProviderFakeRequest {
  /** As sent. */
  rawBody: string;
}

export interface SmsFakeAnswer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

/** What drives either SMS fake from a test. */
export interface SmsFakeController {
  /** The origin: what the adapter's baseUrl takes. */
  readonly url: string;
  /** Every request received, in order, refused and stalled ones included. */
  readonly requests: SmsFakeRequest[];
  /**
   * The next `times` requests (default 1) answer `status` with `body` (default: the provider's
   * own error body for that status) and `headers` (e.g. Retry-After), without sending anything.
   */
  failNext(status: number, times?: number, body?: unknown, headers?: Record<string, string>): void;
  /** Every request's connection is cut as it comes, on new and already open connections alike: a lost connection. */
  down(): void;
  /** Ends down() and stall(); requests already stalled stay stalled. */
  up(): void;
  /** Requests from now on are read and never answered (until up() for new ones, close() for all). */
  stall(): void;
  close(): Promise<void>;
}

/** One SMS provider's wire, for startSmsProviderFake. */
export interface SmsProviderWire {
  /** The provider's error body for `status`, when failNext names none. */
  error(status: number): unknown;
  answer(request: SmsFakeRequest): SmsFakeAnswer;
}

export async function startSmsProviderFake(wire: SmsProviderWire): Promise<SmsFakeController> {
  const fake = await startProviderFake<SmsFakeRequest, SmsFakeAnswer>({
    read: (request, raw) => ({ ...request, rawBody: raw.toString('utf8') }),
    // A queued failure answers whatever was asked, before the provider looks at it.
    answer: (request, takeFailure) => takeFailure() ?? wire.answer(request),
    encode: (body) => ({ text: JSON.stringify(body), contentType: 'application/json; charset=utf-8' }),
  });
  return {
    url: fake.url,
    requests: fake.requests,
    failNext: (status, times, body, headers) => fake.failNext({ status, body: body ?? wire.error(status), ...(headers ? { headers } : {}) }, times),
    down: fake.down,
    up: fake.up,
    stall: fake.stall,
    close: fake.close,
  };
}
