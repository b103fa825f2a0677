/**
 * A fake Mailgun messages API on loopback, in the wire format mailgun.js 14 speaks:
 * `POST /v3/{domain}/messages` with Basic auth `api:<key>` and a multipart (or urlencoded) form
 * of `from`, `to`, `subject`, `text`, `html`, `v:<name>` variables; answered 200
 * `{ id: '<...@domain>', message: 'Queued. Thank you.' }`; errors as `{ message }`, except
 * 401, which Mailgun answers with the bare text "Forbidden".
 */
import { randomBytes } from 'node:crypto';
import { startProviderFake, type ProviderFakeAnswer as Answer, type ProviderFakeRequest } from './provider-fake.js';

export interface MailgunFakeRequest extends ProviderFakeRequest {
  /** The parsed form (each field's values, in order); the raw text when not a form; undefined when empty. */
  body: Record<string, string[]> | string | undefined;
}

/** A message the fake accepted. */
export interface MailgunSentMessage {
  /** The id answered, angle brackets included, as Mailgun gives it. */
  id: string;
  domain: string;
  from: string;
  /** Every recipient, from repeated or comma-separated `to` fields. */
  to: string[];
  subject: string | undefined;
  text: string | undefined;
  html: string | undefined;
  /** The `v:` variables, by name (without the prefix). */
  variables: Record<string, string>;
  /** Every field as posted. */
  fields: Record<string, string[]>;
}

export interface FailNextOptions {
  /** Sent as Retry-After (seconds). */
  retryAfterSeconds?: number;
  message?: string;
}

export interface MailgunFake {
  /** What the adapter's baseUrl takes (no /v3). */
  readonly url: string;
  readonly apiKey: string;
  /** The sending domain the fake knows; others answer 404. */
  readonly domain: string;
  /** Every request that reached the HTTP layer, in order (stalled and failed ones included; dropped ones not). */
  readonly requests: readonly MailgunFakeRequest[];
  readonly messages: readonly MailgunSentMessage[];
  /** Requests whose connection was cut while down. */
  readonly dropped: number;
  /** The next `times` (default 1) message sends answer `status`; then sends work again. */
  failNext(status: number, times?: number, options?: FailNextOptions): void;
  /** Every request's connection is cut before any answer, until up(). */
  down(): void;
  /** Ends down() and stall() (requests already stalled stay unanswered until close()). */
  up(): void;
  /** Requests are read and never answered, until up(). */
  stall(): void;
  close(): Promise<void>;
}

type Failure = { status: number } & FailNextOptions;

const DEFAULT_MESSAGES: Record<number, string> = {
  400: 'Bad request',
  403: 'Domain example.org is not allowed to send: Free accounts are for test purposes only.',
  429: 'Too many requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

const ADDRESS = /^(?:[^<>]*<)?[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+>?$/;

export async function startMailgunFake(options: { apiKey?: string; domain?: string } = {}): Promise<MailgunFake> {
  const apiKey = options.apiKey ?? `key-${randomBytes(16).toString('hex')}`;
  const domain = options.domain ?? 'mg.storyloom.test';
  const messages: MailgunSentMessage[] = [];

  /** Mailgun's error for a failure failNext queued: `{ message }`, or the bare "Forbidden" of a 401. */
  const failed = ({ status, retryAfterSeconds, message }: Failure): Answer => {
    if (status === 401) return { status, body: 'Forbidden' };
    return { status, body: { message: message ?? DEFAULT_MESSAGES[status] ?? `HTTP ${status}` }, headers: retryAfterSeconds === undefined ? {} : { 'retry-after': String(retryAfterSeconds) } };
  };

  const messagesEndpoint = (request: MailgunFakeRequest, toDomain: string): Answer => {
    const given = basicPassword(request.headers.authorization);
    // Worst case on purpose: the answer repeats the key it got, so tests see adapters keep it out of their messages.
    if (given === null || given.user !== 'api' || given.password !== apiKey) return { status: 401, body: `Forbidden (got ${given ? given.password : 'no credentials'})` };
    if (toDomain !== domain) return { status: 404, body: { message: `Domain not found: ${toDomain}` } };
    if (typeof request.body !== 'object') return { status: 400, body: { message: "'from' parameter is missing" } };
    const fields = request.body;
    const one = (name: string) => fields[name]?.[0];
    const from = one('from');
    if (!from) return { status: 400, body: { message: "'from' parameter is missing" } };
    if (!ADDRESS.test(from)) return { status: 400, body: { message: "'from' parameter is not a valid address. please check documentation" } };
    const to = (fields.to ?? []).flatMap((value) => value.split(',')).map((value) => value.trim()).filter(Boolean);
    if (to.length === 0) return { status: 400, body: { message: "'to' parameter is missing" } };
    if (!to.every((address) => ADDRESS.test(address))) return { status: 400, body: { message: "'to' parameter is not a valid address. please check documentation" } };
    if (!one('text') && !one('html') && !one('template')) return { status: 400, body: { message: "Need at least one of 'text', 'html' or 'template' parameters specified" } };
    const id = `<${new Date().toISOString().replace(/\D/g, '').slice(0, 14)}.${randomBytes(8).toString('hex')}@${domain}>`;
    const variables = Object.fromEntries(Object.entries(fields).filter(([name]) => name.startsWith('v:')).map(([name, values]) => [name.slice(2), values[0]!]));
    messages.push({ id, domain, from, to, subject: one('subject'), text: one('text'), html: one('html'), variables, fields });
    return { status: 200, body: { id, message: 'Queued. Thank you.' } };
  };

  const fake = await startProviderFake<MailgunFakeRequest, Failure>({
    read: async (request, raw) => ({ ...request, body: await parseForm(raw, request.headers['content-type']) }),
    answer(request, takeFailure) {
      const route = /^\/v3\/([^/]+)\/messages$/.exec(request.path.split('?')[0]!);
      // What Mailgun answers on a path it does not serve.
      if (request.method !== 'POST' || !route) return { status: 404, body: { message: 'Not Found' } };
      // Only message sends fail as failNext says.
      const failure = takeFailure();
      return failure ? failed(failure) : messagesEndpoint(request, decodeURIComponent(route[1]!));
    },
    // Mailgun answers some errors (401) in bare text.
    encode: (body) => (typeof body === 'string' ? { text: body, contentType: 'text/plain; charset=utf-8' } : { text: JSON.stringify(body), contentType: 'application/json' }),
  });

  return {
    url: fake.url,
    apiKey,
    domain,
    requests: fake.requests,
    messages,
    get dropped() {
      return fake.dropped;
    },
    failNext: (status, times, failOptions = {}) => fake.failNext({ status, ...failOptions }, times),
    down: fake.down,
    up: fake.up,
    stall: fake.stall,
    close: fake.close,
  };
}

function basicPassword(header: string | undefined): { user: string; password: string } | null {
  const match = header ? /^Basic (.+)$/.exec(header) : null;
  if (!match) return null;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? null : { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** Multipart or urlencoded, as Mailgun takes both; undici's parser reads either. */
async function parseForm(raw: Buffer, contentType: string | undefined): Promise<MailgunFakeRequest['body']> {
  if (raw.length === 0) return undefined;
  if (!contentType || !/^(multipart\/form-data|application\/x-www-form-urlencoded)/i.test(contentType)) return raw.toString('utf8');
  try {
    const form = await new Response(raw, { headers: { 'content-type': contentType } }).formData();
    const fields: Record<string, string[]> = {};
    for (const [name, value] of form.entries()) (fields[name] ??= []).push(typeof value === 'string' ? value : `[file ${value.name}]`);
    return fields;
  } catch {
    return raw.toString('utf8');
  }
}
