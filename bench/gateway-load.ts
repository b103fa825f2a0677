/**
 * The gateway bench's load generator, a child process of its own (forked by bench/gateway.ts,
 * talking over IPC), so the runner's bookkeeping and the gateways never share its event loop.
 * One autocannon run per message (a warm-up is a run whose numbers the runner drops): fixed
 * connections, pipelining 1, a fixed duration. Every response is checked (status, a `data` object, no
 * `errors`, a body about as long as the validated sample's), and latencies are kept to the
 * microsecond (autocannon's own histogram rounds to whole milliseconds).
 */
import { randomUUID } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { ANONYMOUS, signCaller } from '../platform/internal-auth.js';

/** The part of autocannon's API used here (it ships no types, and @types/autocannon is not installed). */
interface CannonRequest {
  method?: string;
  body?: string;
  headers?: Record<string, string>;
  setupRequest?: (request: CannonRequest, context: object) => CannonRequest;
  onResponse?: (status: number, body: string) => void;
}
interface CannonResult {
  duration: number;
  errors: number;
  timeouts: number;
}
type Autocannon = (options: { url: string; connections: number; pipelining: number; duration: number } & CannonRequest & { requests: CannonRequest[] }) => EventEmitter;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

export interface LoadRequest {
  url: string;
  /** The JSON request body. */
  body: string;
  connections: number;
  durationSeconds: number;
  /** The validated sample's length: a body more than 10% away from it counts as bad. */
  expectedBytes: number;
  /** Straight to a subgraph: each request signed, as the gateway would, for this audience. */
  sign?: { internalSecret: string; audience: string };
}

export interface LoadResult {
  /** Responses that passed every check. */
  ok: number;
  /** Non-2xx statuses, bodies with errors or of the wrong shape, socket errors and timeouts. */
  bad: number;
  badSamples: string[];
  seconds: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

type Message = { id: number; request: LoadRequest };

process.on('message', (message: Message) => {
  void run(message.request).then(
    (result) => process.send!({ id: message.id, result }),
    (error: unknown) => process.send!({ id: message.id, error: error instanceof Error ? error.stack : String(error) }),
  );
});

function run(request: LoadRequest): Promise<LoadResult> {
  const seconds = request.durationSeconds;
  const latencies: number[] = [];
  let bad = 0;
  const badSamples: string[] = [];
  const tooFar = Math.max(64, request.expectedBytes * 0.1);
  const headers = { 'content-type': 'application/json' };
  const { sign } = request;
  const parsed = sign ? (JSON.parse(request.body) as { query: string; variables?: unknown }) : null;
  const instance = autocannon({
    url: request.url,
    method: 'POST',
    connections: request.connections,
    pipelining: 1,
    duration: seconds,
    headers,
    body: request.body,
    requests: [
      {
        method: 'POST',
        body: request.body,
        // Signed per request: a signature binds a timestamp valid 30 s, as the gateway's do.
        ...(sign && parsed
          ? {
              setupRequest: (req: CannonRequest) => ({
                ...req,
                headers: { ...headers, ...signCaller(sign.internalSecret, { audience: sign.audience, caller: ANONYMOUS, correlationId: randomUUID(), operation: parsed }) },
              }),
            }
          : {}),
        onResponse: (status: number, body: string) => {
          if (status === 200 && body.startsWith('{"data":{') && !body.includes('"errors":') && Math.abs(body.length - request.expectedBytes) <= tooFar) return;
          bad++;
          if (badSamples.length < 3) badSamples.push(`${status} ${body.slice(0, 300)}`);
        },
      },
    ],
  });
  instance.on('response', (_client: unknown, _status: number, _bytes: number, responseTime: number) => latencies.push(responseTime));
  return new Promise((resolve, reject) => {
    instance.on('error', reject);
    instance.on('done', (result: CannonResult) => {
      latencies.sort((a, b) => a - b);
      const failures = result.errors + result.timeouts;
      if (failures && badSamples.length < 3) badSamples.push(`${result.errors} socket errors, ${result.timeouts} timeouts`);
      const ok = Math.max(0, latencies.length - bad);
      resolve({
        ok,
        bad: bad + failures,
        badSamples,
        seconds: result.duration,
        requestsPerSecond: ok / result.duration,
        p50Ms: percentile(latencies, 0.5),
        p99Ms: percentile(latencies, 0.99),
      });
    });
  });
}

function percentile(sorted: number[], q: number): number {
  if (!sorted.length) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}
