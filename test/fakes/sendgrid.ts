/**
 * A fake SendGrid v3 mail API on loopback, in the wire format `@sendgrid/mail` 8.1.6 speaks:
 * `POST /v3/mail/send` with `Authorization: Bearer <key>` and a JSON body (personalizations,
 * from, subject, content, custom_args), answered 202 with an empty body and `X-Message-Id`;
 * errors as `{ errors: [{ message, field, help }] }`. It also signs Event Webhook posts the way
 * SendGrid does (ECDSA P-256 / SHA-256 over timestamp + raw body, base64 DER), with a key pair
 * of its own, so webhook handlers are tested against real signatures.
 */
import { generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { startProviderFake, type ProviderFakeAnswer as Answer, type ProviderFakeRequest } from './provider-fake.js';

export interface SendGridFakeRequest extends ProviderFakeRequest {
  /** The parsed JSON body; the raw text when not JSON; undefined when empty. */
  body: unknown;
}

/** A message the fake accepted (answered 202). */
export interface SendGridSentMessage {
  /** The X-Message-Id it answered. */
  id: string;
  /** Every `to` address of every personalization. */
  to: string[];
  from: string;
  subject: string | undefined;
  text: string | undefined;
  html: string | undefined;
  /** The top-level custom_args, overlaid with the first personalization's: what SendGrid adds to each event. */
  customArgs: Record<string, string>;
  /** The request body as posted. */
  body: Record<string, unknown>;
}

export type SendGridEventName = 'processed' | 'deferred' | 'delivered' | 'bounce' | 'dropped' | 'open' | 'click' | 'spamreport' | 'unsubscribe';

/** A webhook post as SendGrid sends it: the exact bytes signed, and the headers. */
export interface SignedPost {
  body: Buffer;
  headers: Record<string, string>;
}

export interface SendGridEventSigner {
  /** Base64 DER SPKI: what SendGrid's Mail Settings page shows as the verification key. */
  readonly publicKey: string;
  /**
   * Posts `events` as SendGrid would: a JSON array and CRLF, signed at `timestamp` (Unix seconds,
   * default now). A string is posted as it is, signed all the same, to test bodies SendGrid never sends.
   */
  signedEvents(events: readonly object[] | string, options?: { timestamp?: number }): SignedPost;
}

export interface FailNextOptions {
  /** Sent as Retry-After (seconds), e.g. with a 429. */
  retryAfterSeconds?: number;
  /** The error's message (default: SendGrid's usual text for the status). */
  message?: string;
}

export interface SendGridFake extends SendGridEventSigner {
  /** What the adapter's baseUrl takes. */
  readonly url: string;
  /** The key the fake accepts. */
  readonly apiKey: string;
  /** Every request that reached the HTTP layer, in order (stalled and failed ones included; dropped ones not). */
  readonly requests: readonly SendGridFakeRequest[];
  /** Messages accepted, in order. */
  readonly messages: readonly SendGridSentMessage[];
  /** Requests whose connection was cut while down. */
  readonly dropped: number;
  /** The next `times` (default 1) mail sends answer `status` with SendGrid's error body; then sends work again. */
  failNext(status: number, times?: number, options?: FailNextOptions): void;
  /** Every request's connection is cut before any answer (the host is unreachable), until up(). */
  down(): void;
  /** Ends down() and stall() (requests already stalled stay unanswered until close()). */
  up(): void;
  /** Requests are read and never answered, until up() (those stay unanswered until close()). */
  stall(): void;
  /** An event about `message` in SendGrid's shape: sg_message_id starts with its X-Message-Id, its custom_args spread in. */
  eventFor(message: SendGridSentMessage, event: SendGridEventName, extra?: Record<string, unknown>): Record<string, unknown>;
  close(): Promise<void>;
}

export const SIGNATURE_HEADER = 'X-Twilio-Email-Event-Webhook-Signature';
export const TIMESTAMP_HEADER = 'X-Twilio-Email-Event-Webhook-Timestamp';

/** A fresh P-256 key pair and SendGrid's way of signing with it. */
export function createSendGridEventSigner(): SendGridEventSigner {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return {
    publicKey: publicKey.export({ format: 'der', type: 'spki' }).toString('base64'),
    signedEvents: (events, options = {}) => signedPost(privateKey, events, options.timestamp ?? Math.floor(Date.now() / 1000)),
  };
}

function signedPost(privateKey: KeyObject, events: readonly object[] | string, timestamp: number): SignedPost {
  // SendGrid's posts end with CRLF, and the signature covers it: handlers must verify the raw bytes.
  const body = Buffer.from(typeof events === 'string' ? events : `${JSON.stringify(events)}\r\n`, 'utf8');
  const signature = sign('sha256', Buffer.concat([Buffer.from(String(timestamp)), body]), { key: privateKey, dsaEncoding: 'der' });
  return {
    body,
    headers: { 'Content-Type': 'application/json', [SIGNATURE_HEADER]: signature.toString('base64'), [TIMESTAMP_HEADER]: String(timestamp) },
  };
}

type Failure = { status: number } & FailNextOptions;

const DEFAULT_MESSAGES: Record<number, string> = {
  400: 'Bad Request',
  401: 'The provided authorization grant is invalid, expired, or revoked',
  403: 'access forbidden',
  413: 'The JSON payload you have included in your request is too large.',
  429: 'too many requests',
  500: 'Internal server error',
  503: 'Service Unavailable',
};

const error = (status: number, message: string, field: string | null = null, extraHeaders: Record<string, string> = {}): Answer => ({
  status,
  body: { errors: [{ message, field, help: null }] },
  headers: extraHeaders,
});

const ADDRESS = /^[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+$/;

export async function startSendGridFake(options: { apiKey?: string } = {}): Promise<SendGridFake> {
  const apiKey = options.apiKey ?? `SG.fake-${randomBytes(8).toString('hex')}.${randomBytes(16).toString('base64url')}`;
  const signer = createSendGridEventSigner();
  const messages: SendGridSentMessage[] = [];

  /** SendGrid's error for a failure failNext queued; a 429 comes with its rate-limit headers. */
  const failed = ({ status, retryAfterSeconds, message }: Failure): Answer => {
    const headers: Record<string, string> = {};
    if (status === 429) Object.assign(headers, { 'x-ratelimit-limit': '600', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(Math.floor(Date.now() / 1000) + 60) });
    if (retryAfterSeconds !== undefined) headers['retry-after'] = String(retryAfterSeconds);
    return error(status, message ?? DEFAULT_MESSAGES[status] ?? `HTTP ${status}`, null, headers);
  };

  const mailSend = (request: SendGridFakeRequest): Answer => {
    const auth = request.headers.authorization;
    // Worst case on purpose: the message repeats the key it got, so tests see adapters keep it out of theirs.
    if (auth !== `Bearer ${apiKey}`) return error(401, `${DEFAULT_MESSAGES[401]} (got ${auth ?? 'no Authorization header'})`);
    if (!/^application\/json/i.test(request.headers['content-type'] ?? '')) return error(415, 'Content-Type should be application/json.');
    const invalid = validate(request.body);
    if (invalid) return invalid;
    const body = request.body as MailBody;
    const id = randomBytes(16).toString('base64url').slice(0, 22);
    const content = body.content ?? [];
    messages.push({
      id,
      to: body.personalizations.flatMap((p) => p.to.map((t) => t.email)),
      from: body.from.email,
      subject: body.subject ?? body.personalizations[0]?.subject,
      text: content.find((c) => c.type === 'text/plain')?.value,
      html: content.find((c) => c.type === 'text/html')?.value,
      customArgs: { ...body.custom_args, ...body.personalizations[0]?.custom_args },
      body: request.body as Record<string, unknown>,
    });
    return { status: 202, headers: { 'x-message-id': id } };
  };

  const fake = await startProviderFake<SendGridFakeRequest, Failure>({
    read: (request, raw) => ({ ...request, body: parse(raw.toString('utf8')) }),
    answer(request, takeFailure) {
      if (request.method !== 'POST' || request.path.split('?')[0] !== '/v3/mail/send') return error(404, `No route for ${request.method} ${request.path}`);
      // Only mail sends fail as failNext says.
      const failure = takeFailure();
      return failure ? failed(failure) : mailSend(request);
    },
  });

  return {
    url: `${fake.url}/`,
    apiKey,
    publicKey: signer.publicKey,
    signedEvents: signer.signedEvents,
    requests: fake.requests,
    messages,
    get dropped() {
      return fake.dropped;
    },
    failNext: (status, times, failOptions = {}) => fake.failNext({ status, ...failOptions }, times),
    down: fake.down,
    up: fake.up,
    stall: fake.stall,
    eventFor(message, event, extra = {}) {
      return {
        email: message.to[0],
        timestamp: Math.floor(Date.now() / 1000),
        'smtp-id': `<${message.id}@ismtpd0001p1lon1.sendgrid.net>`,
        event,
        sg_event_id: randomBytes(16).toString('base64url'),
        sg_message_id: `${message.id}.filterdrecv-6f7c8d9b5-x2k4p-1-${Date.now().toString(16).toUpperCase()}-1.0`,
        ...(event === 'bounce' ? { reason: '550 5.1.1 The email account that you tried to reach does not exist.', status: '5.1.1', type: 'bounce' } : {}),
        ...(event === 'dropped' ? { reason: 'Bounced Address', status: '5.0.0' } : {}),
        ...(event === 'deferred' ? { response: '421 Try again later', attempt: '1' } : {}),
        ...(event === 'click' ? { url: 'https://example.com/stories/1', useragent: 'Mozilla/5.0' } : {}),
        ...message.customArgs,
        ...extra,
      };
    },
    close: fake.close,
  };
}

interface MailBody {
  personalizations: { to: { email: string; name?: string }[]; subject?: string; custom_args?: Record<string, string> }[];
  from: { email: string; name?: string };
  subject?: string;
  content?: { type: string; value: string }[];
  template_id?: string;
  custom_args?: Record<string, string>;
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The checks SendGrid makes that an adapter could fail, with its messages and field names. */
function validate(body: unknown): Answer | null {
  if (!isObject(body)) return error(400, 'Bad Request');
  const { personalizations, from, subject, content, template_id: templateId, custom_args: customArgs } = body;
  if (!Array.isArray(personalizations) || personalizations.length === 0) {
    return error(400, 'The personalizations field is required and must have at least one personalization.', 'personalizations');
  }
  for (const [i, p] of personalizations.entries()) {
    if (!isObject(p) || !Array.isArray(p.to) || p.to.length === 0) {
      return error(400, 'The to array is required for all personalization objects, and must have at least one email object with a valid email address.', `personalizations.${i}.to`);
    }
    for (const [j, to] of p.to.entries()) {
      if (!isObject(to) || typeof to.email !== 'string' || !ADDRESS.test(to.email)) return error(400, 'Does not contain a valid address.', `personalizations.${i}.to.${j}.email`);
    }
  }
  if (!isObject(from) || typeof from.email !== 'string' || !ADDRESS.test(from.email)) {
    return error(400, 'The from object must be provided for every email send. It is an object that requires the email parameter, but may also contain a name parameter.', 'from');
  }
  if (templateId === undefined) {
    const everySubject = personalizations.every((p: Record<string, unknown>) => typeof p.subject === 'string' && p.subject);
    if ((typeof subject !== 'string' || !subject) && !everySubject) {
      return error(400, 'The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined.', 'subject');
    }
    if (!Array.isArray(content) || content.length === 0) {
      return error(400, 'Unless a valid template_id is provided, the content parameter is required. There must be at least one defined content block. We typically suggest both text/plain and text/html blocks are included, but only one block is required.', 'content');
    }
    for (const [i, block] of content.entries()) {
      if (!isObject(block) || typeof block.value !== 'string' || block.value.length === 0) return error(400, 'The content value must be a string at least one character in length.', `content.${i}.value`);
    }
    const plain = content.findIndex((block: Record<string, unknown>) => block.type === 'text/plain');
    if (plain > 0) return error(400, 'If present, text/plain content must be first, followed by text/html, followed by any other content.', 'content.0.type');
  }
  if (customArgs !== undefined && (!isObject(customArgs) || Object.values(customArgs).some((v) => typeof v !== 'string'))) {
    return error(400, 'Invalid type. Expected: string, given: integer.', 'custom_args');
  }
  return null;
}

function parse(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
