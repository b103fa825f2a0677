/**
 * What the fake video providers (runway.ts, luma.ts, fal.ts) share: one controller interface, so
 * end-to-end tests drive any of them the same way; the HTTP plumbing (request log, behaviours,
 * stalls, closing); the tasks and how they progress from poll to poll, and their cancellation; and the "CDN" that serves
 * finished videos, a real MP4 made once per process with ffmpeg. Each provider file only says how
 * its wire looks: paths, field names, states, error bodies, credentials.
 */
import ffmpeg from '@ffmpeg-installer/ffmpeg';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

export type VideoFakeBehaviour =
  /** Queued for `queued` polls (default 0), running for `polls` polls (default 2, progress rising), then succeeded. */
  | { kind: 'succeed'; polls?: number; queued?: number }
  /** Running for `polls` polls (default 0), then failed at the provider with `message` (and `code` where the provider has codes). */
  | { kind: 'fail'; message?: string; code?: string; polls?: number }
  /** The task stays running forever. */
  | { kind: 'hang' }
  /** Creates answer 429 with Retry-After: `retryAfter` seconds (default 0), `times` times (default: always); then creates work again. */
  | { kind: 'throttle'; times?: number; retryAfter?: number }
  /** Creates answer the provider's content-policy refusal (400; 422 at fal.ai). */
  | { kind: 'refuse'; message?: string }
  /** Every request, video links included, answers 500. */
  | { kind: 'down' }
  /** API requests are accepted and never answered (until close). */
  | { kind: 'stall' }
  /** API requests get their status, headers and half their JSON, never the rest (until close). */
  | { kind: 'stall-body' }
  /** Video links send their headers and the first bytes of the MP4, never the rest (until close). */
  | { kind: 'stall-download' }
  /** Video links answer 403 with the CDN's XML error (an expired link); with `stall`, its headers and first bytes, never the rest (until close). */
  | { kind: 'deny-download'; stall?: boolean }
  /**
   * API requests (only those to the `on` endpoint, when given) answer `status` (default 500) with
   * a proxy's HTML error page instead of the provider's JSON: the proxy in front of it failed.
   */
  | { kind: 'proxy-error'; on?: Endpoint['kind']; status?: number }
  /** API requests answer 307 to the same path on `to` (an origin: another host). */
  | { kind: 'redirect'; to: string };

/** Behaviours that describe the next tasks; the others describe the next requests. */
type TaskBehaviour = Extract<VideoFakeBehaviour, { kind: 'succeed' | 'fail' | 'hang' }>;
type RequestBehaviour = Exclude<VideoFakeBehaviour, TaskBehaviour>;

export interface FakeRequest {
  method: string;
  /** Path and query, as sent. */
  path: string;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body; the raw text when not JSON; undefined when empty. */
  body: unknown;
}

export interface FakeTask {
  id: string;
  prompt: string;
  /** The create request's body, as parsed. */
  body: Record<string, unknown>;
  /** The path it was created on (fal.ai: the model; Luma: which of its two create paths). */
  createdOn: string;
  behaviour: TaskBehaviour;
  /** Status requests about this task so far. */
  polls: number;
  /** A cancel of it was accepted (what the provider reports afterwards is its wire's to say). */
  cancelled: boolean;
}

/** Where a task stands after its latest poll. */
export type TaskPhase =
  | { state: 'queued' }
  | { state: 'running'; progress: number }
  | { state: 'succeeded'; videoUrl: string }
  | { state: 'failed'; message: string; code: string | undefined };

export interface VideoFake {
  /** What the adapter's baseUrl (queueUrl for fal.ai) takes. */
  readonly url: string;
  /** The key the fake accepts. */
  readonly apiKey: string;
  /**
   * succeed/fail/hang: for tasks created from now on (and they end any request behaviour);
   * the others: for requests from now on (tasks keep the last task behaviour).
   */
  behave(behaviour: VideoFakeBehaviour): void;
  /** Tasks created (successful creates). */
  readonly creations: number;
  /** Status requests answered. */
  readonly polls: number;
  /** Video downloads started. */
  readonly downloads: number;
  /**
   * Accepted cancels that stopped a task still queued or running. A cancel of a finished task
   * (refused by fal.ai, a deletion at Runway and Luma) or a second cancel of one task is not one.
   */
  readonly cancellations: number;
  /** Every request received, in order, rejected ones included. */
  readonly requests: FakeRequest[];
  /** Every task created, in order, with its prompt. */
  readonly tasks: readonly FakeTask[];
  close(): Promise<void>;
}

export type Answer = { status: number; body: unknown; headers?: Record<string, string> };

/** Which endpoint a request is, as the provider's wire names it. */
export type Endpoint = { kind: 'create' } | { kind: 'status'; taskId: string } | { kind: 'result'; taskId: string } | { kind: 'cancel'; taskId: string };

/** One provider's wire format. */
export interface ProviderWire {
  /** Names the provider in error texts. */
  name: string;
  /** The base path the adapter's setting includes (Luma: /dream-machine/v1), or ''. */
  basePath: string;
  endpoint(method: string, path: string): Endpoint | null;
  /** The provider's error body (its own shape). */
  error(status: number, message: string, type?: string): unknown;
  /** A rejection when the credentials (or required headers) are missing or wrong. */
  checkAuth(request: FakeRequest, apiKey: string): Answer | null;
  /** A rejection when the create body is not what the provider takes; else the prompt. */
  validate(request: FakeRequest): Answer | { prompt: string };
  /** The refusal answered to creates under `refuse`. */
  refusal(message: string): Answer;
  created(task: FakeTask, origin: string): Answer;
  status(task: FakeTask, phase: TaskPhase, origin: string): Answer;
  /** fal.ai only: the outcome at the response URL. */
  result?(task: FakeTask, phase: TaskPhase): Answer;
  /**
   * The answer to a cancel of `task` in `phase`; a 2xx marks it cancelled, and with `forget` the
   * provider no longer knows it (Luma deletes it: 404 from then on).
   */
  cancel(task: FakeTask, phase: TaskPhase): { answer: Answer; forget?: boolean };
}

const run = promisify(execFile);
let mp4: Promise<Buffer> | undefined;

/** A one-second 320x180 H.264 MP4 (moov first), made once per process. */
export function fakeMp4(): Promise<Buffer> {
  mp4 ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'video-fake-'));
    try {
      const file = join(dir, 'video.mp4');
      const args = ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc=size=320x180:rate=24', '-t', '1', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-movflags', '+faststart', '-y', file];
      await run(ffmpeg.path, args);
      return await readFile(file);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  })();
  return mp4;
}

/** Where a task stands at its `polls`-th poll under its behaviour. */
export function phaseOf(task: FakeTask, videoUrl: string): TaskPhase {
  const b = task.behaviour;
  const k = task.polls;
  if (b.kind === 'hang') return { state: 'running', progress: Math.min(0.9, k / (k + 10)) };
  if (b.kind === 'fail') {
    const polls = b.polls ?? 0;
    return k <= polls ? { state: 'running', progress: k / (polls + 1) } : { state: 'failed', message: b.message ?? 'The video could not be generated', code: b.code };
  }
  const queued = b.queued ?? 0;
  const polls = b.polls ?? 2;
  if (k <= queued) return { state: 'queued' };
  if (k <= queued + polls) return { state: 'running', progress: Number(((k - queued) / (polls + 1)).toFixed(4)) };
  return { state: 'succeeded', videoUrl };
}

export async function startVideoFake(wire: ProviderWire, apiKey: string): Promise<VideoFake> {
  const video = await fakeMp4();
  const requests: FakeRequest[] = [];
  const tasks = new Map<string, FakeTask>();
  let taskBehaviour: TaskBehaviour = { kind: 'succeed' };
  let requestBehaviour: RequestBehaviour | null = null;
  let throttlesLeft = 0;
  let creations = 0;
  let polls = 0;
  let downloads = 0;
  let cancellations = 0;
  let origin = '';
  const videoUrlOf = (task: FakeTask) => `${origin}/cdn/videos/${task.id}.mp4?expires=${Date.now() + 3_600_000}&signature=${task.id.slice(0, 8)}`;

  const send = (res: ServerResponse, answer: Answer) => {
    // 204 No Content (Runway's and Luma's DELETE).
    if (answer.body === undefined) return void res.writeHead(answer.status, { 'content-length': 0, ...answer.headers }).end();
    const text = JSON.stringify(answer.body);
    res.writeHead(answer.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...answer.headers });
    if (requestBehaviour?.kind === 'stall-body') return void res.write(text.slice(0, Math.floor(text.length / 2)));
    res.end(text);
  };

  const cdn = (res: ServerResponse, path: string) => {
    if (!/^\/cdn\/videos\/[\w-]+\.mp4(\?|$)/.test(path)) return send(res, { status: 404, body: 'NoSuchKey' });
    if (requestBehaviour?.kind === 'deny-download') {
      const xml = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>';
      res.writeHead(403, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(xml) });
      if (requestBehaviour.stall) return void res.write(xml.slice(0, 20));
      return void res.end(xml);
    }
    downloads++;
    res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': video.length, 'accept-ranges': 'bytes' });
    if (requestBehaviour?.kind === 'stall-download') return void res.write(video.subarray(0, 1024));
    res.end(video);
  };

  const api = (request: FakeRequest, res: ServerResponse) => {
    const path = request.path.split('?')[0]!;
    const endpoint = path.startsWith(wire.basePath) ? wire.endpoint(request.method, path.slice(wire.basePath.length)) : null;
    if (!endpoint) return send(res, { status: 404, body: wire.error(404, `No route for ${request.method} ${path}`) });
    if (requestBehaviour?.kind === 'redirect') return void res.writeHead(307, { location: `${requestBehaviour.to}${request.path}`, 'content-length': 0 }).end();
    if (requestBehaviour?.kind === 'proxy-error' && (requestBehaviour.on ?? endpoint.kind) === endpoint.kind) {
      const status = requestBehaviour.status ?? 500;
      const page = `<html><head><title>${status} Internal Server Error</title></head><body><center><h1>${status} Internal Server Error</h1></center><hr><center>nginx</center></body></html>`;
      return void res.writeHead(status, { 'content-type': 'text/html', 'content-length': Buffer.byteLength(page) }).end(page);
    }
    const rejected = wire.checkAuth(request, apiKey);
    if (rejected) return send(res, rejected);
    if (endpoint.kind === 'create') {
      if (requestBehaviour?.kind === 'throttle' && throttlesLeft > 0) {
        const retryAfter = String(requestBehaviour.retryAfter ?? 0);
        if (--throttlesLeft === 0) requestBehaviour = null;
        return send(res, { status: 429, body: wire.error(429, 'Too many requests: rate limit exceeded'), headers: { 'retry-after': retryAfter } });
      }
      if (requestBehaviour?.kind === 'refuse') return send(res, wire.refusal(requestBehaviour.message ?? 'The prompt was flagged by content moderation'));
      const valid = wire.validate(request);
      if (!('prompt' in valid)) return send(res, valid);
      const task: FakeTask = { id: randomUUID(), prompt: valid.prompt, body: request.body as Record<string, unknown>, createdOn: path, behaviour: taskBehaviour, polls: 0, cancelled: false };
      tasks.set(task.id, task);
      creations++;
      return send(res, wire.created(task, origin));
    }
    const task = tasks.get(endpoint.taskId);
    if (!task) return send(res, { status: 404, body: wire.error(404, `No task ${endpoint.taskId}`) });
    if (endpoint.kind === 'cancel') {
      const phase = phaseOf(task, videoUrlOf(task));
      const { answer, forget } = wire.cancel(task, phase);
      if (answer.status >= 200 && answer.status < 300) {
        if (!task.cancelled && (phase.state === 'queued' || phase.state === 'running')) cancellations++;
        task.cancelled = true;
        if (forget) tasks.delete(task.id);
      }
      return send(res, answer);
    }
    if (endpoint.kind === 'status') {
      task.polls++;
      polls++;
      return send(res, wire.status(task, phaseOf(task, videoUrlOf(task)), origin));
    }
    if (!wire.result) return send(res, { status: 404, body: wire.error(404, 'Not found') });
    return send(res, wire.result(task, phaseOf(task, videoUrlOf(task))));
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const request: FakeRequest = { method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers, body: parse(text, req) };
      requests.push(request);
      if (requestBehaviour?.kind === 'down') return send(res, { status: 500, body: wire.error(500, 'Internal server error') });
      if (request.path.startsWith('/cdn/')) return cdn(res, request.path);
      if (requestBehaviour?.kind === 'stall') return; // close() destroys the socket
      api(request, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: `${origin}${wire.basePath}`,
    apiKey,
    behave(behaviour) {
      if (behaviour.kind === 'succeed' || behaviour.kind === 'fail' || behaviour.kind === 'hang') {
        taskBehaviour = behaviour;
        requestBehaviour = null;
        return;
      }
      requestBehaviour = behaviour;
      if (behaviour.kind === 'throttle') throttlesLeft = behaviour.times ?? Infinity;
    },
    get creations() {
      return creations;
    },
    get polls() {
      return polls;
    },
    get downloads() {
      return downloads;
    },
    get cancellations() {
      return cancellations;
    },
    requests,
    get tasks() {
      return [...tasks.values()];
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((e) => (e ? reject(e) : resolve()));
        // Stalled requests never finish on their own, and fetch keeps idle sockets alive.
        server.closeAllConnections();
      }),
  };
}

function parse(text: string, req: IncomingMessage): unknown {
  if (!text) return undefined;
  if (!/json/i.test(req.headers['content-type'] ?? '')) return text;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** `Authorization: <scheme> <key>`, or null. */
export function credential(request: FakeRequest, scheme: string): string | null {
  const header = request.headers.authorization;
  const match = typeof header === 'string' ? new RegExp(`^${scheme} (.+)$`).exec(header) : null;
  return match ? match[1]! : null;
}

/** What a 401 says of the key it got: all of it, the worst a provider could do, so tests see adapters keep it out of their messages. */
export function shownKey(key: string | null): string {
  return key === null ? 'none' : key;
}
