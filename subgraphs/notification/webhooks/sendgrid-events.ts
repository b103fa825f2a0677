/**
 * SendGrid's signed Event Webhook: a POST of a JSON array of events, signed with ECDSA P-256 /
 * SHA-256 over the timestamp header followed by the raw body (base64 DER signature), checked
 * against the account's verification key (base64 DER SPKI, from Mail Settings). Verified with
 * node:crypto over the bytes as received: @sendgrid/eventwebhook decodes the body to a string
 * first, which changes any byte that is not valid UTF-8.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { WebhookRefused } from './refused.js';


export const SENDGRID_EVENTS = ['processed', 'deferred', 'delivered', 'bounce', 'dropped', 'open', 'click', 'spamreport', 'unsubscribe', 'group_unsubscribe', 'group_resubscribe'] as const;
export type SendGridEventName = (typeof SENDGRID_EVENTS)[number];

export interface SendGridEvent {
  email: string;
  /** Unix seconds. */
  timestamp: number;
  event: SendGridEventName;
  /** Unique per event: SendGrid retries posts, so handlers de-duplicate on it. */
  sg_event_id: string;
  /** Starts with the X-Message-Id the send was answered with, followed by ".filter...". */
  sg_message_id: string;
  /** Why it bounced or was dropped. */
  reason?: string;
  /** The link clicked. */
  url?: string;
  /** Ours, from the send's custom_args. */
  deliveryId?: string;
  /** A bounce's kind: "bounce" (permanent) or "blocked" (temporary). */
  type?: string;
}

export interface SendGridWebhookInput {
  /** Base64 DER SPKI, as SendGrid shows it (a PEM is accepted too). */
  publicKey: string;
  /** X-Twilio-Email-Event-Webhook-Signature. */
  signature: string | readonly string[] | undefined;
  /** X-Twilio-Email-Event-Webhook-Timestamp (Unix seconds). */
  timestamp: string | readonly string[] | undefined;
  /** The body exactly as received (SendGrid's ends with CRLF, inside the signature). */
  rawBody: Buffer;
  now: Date;
  /** How far the timestamp may be from now, either way (default 300): older posts are refused as replays. */
  maxAgeSeconds?: number;
}

const SIGNATURE_HEADER = 'X-Twilio-Email-Event-Webhook-Signature';
const TIMESTAMP_HEADER = 'X-Twilio-Email-Event-Webhook-Timestamp';

/** The events of a genuine, fresh post; throws WebhookRefused otherwise. Events of kinds SendGrid added after this list are left out. */
export function verifySendGridWebhook(input: SendGridWebhookInput): SendGridEvent[] {
  const { rawBody, now, maxAgeSeconds = 300 } = input;
  const key = publicKeyOf(input.publicKey);
  const signature = single(input.signature, SIGNATURE_HEADER);
  const timestamp = single(input.timestamp, TIMESTAMP_HEADER);
  if (!/^\d{1,12}$/.test(timestamp)) throw new WebhookRefused('BAD_SIGNATURE', `${TIMESTAMP_HEADER} is not a Unix time`);
  // The signed bytes are the header's text as sent, not a number printed back.
  const signed = Buffer.concat([Buffer.from(timestamp, 'utf8'), rawBody]);
  let genuine = false;
  try {
    genuine = verify('sha256', signed, { key, dsaEncoding: 'der' }, Buffer.from(signature, 'base64'));
  } catch {
    // A signature that is not DER at all: as bad as a wrong one.
  }
  if (!genuine) throw new WebhookRefused('BAD_SIGNATURE', 'The Event Webhook signature does not match the body and timestamp');
  const age = now.getTime() / 1000 - Number(timestamp);
  if (Math.abs(age) > maxAgeSeconds) {
    throw new WebhookRefused('STALE', `The Event Webhook timestamp is ${Math.round(Math.abs(age))} s ${age > 0 ? 'old' : 'in the future'} (at most ${maxAgeSeconds} s)`);
  }
  return eventsOf(rawBody);
}

function single(header: string | readonly string[] | undefined, name: string): string {
  if (header === undefined || header === '' || (Array.isArray(header) && header.length === 0)) throw new WebhookRefused('UNSIGNED', `${name} is missing`);
  if (typeof header !== 'string') throw new WebhookRefused('BAD_SIGNATURE', `${name} was sent more than once`);
  return header.trim();
}

/** The key of the last call: every post of an account carries the same one. */
let cached: { text: string; key: KeyObject } | undefined;

function publicKeyOf(text: string): KeyObject {
  if (cached?.text === text) return cached.key;
  let key: KeyObject;
  try {
    key = text.includes('-----BEGIN') ? createPublicKey(text) : createPublicKey({ key: Buffer.from(text.trim(), 'base64'), format: 'der', type: 'spki' });
  } catch (error) {
    // Our configuration, not the caller's request: fail loudly rather than refuse every post.
    throw new RangeError(`The SendGrid verification key is not a base64 DER public key: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new RangeError('The SendGrid verification key is not a P-256 (prime256v1) key');
  cached = { text, key };
  return key;
}

const KNOWN: ReadonlySet<string> = new Set(SENDGRID_EVENTS);

function eventsOf(rawBody: Buffer): SendGridEvent[] {
  let body: unknown;
  try {
    body = JSON.parse(rawBody.toString('utf8'));
  } catch {
    throw new WebhookRefused('MALFORMED', 'The Event Webhook body is not JSON');
  }
  if (!Array.isArray(body)) throw new WebhookRefused('MALFORMED', 'The Event Webhook body is not an array of events');
  const events: SendGridEvent[] = [];
  for (const [i, item] of body.entries()) {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new WebhookRefused('MALFORMED', `Event ${i} is not an object`);
    const e = item as Record<string, unknown>;
    const text = (field: string) => {
      const value = e[field];
      if (typeof value !== 'string' || !value) throw new WebhookRefused('MALFORMED', `Event ${i} has no ${field}`);
      return value;
    };
    const optional = (field: string) => (typeof e[field] === 'string' ? (e[field] as string) : undefined);
    const name = text('event');
    // A kind added after this list is not ours to refuse: refusing would make SendGrid post the whole batch again for a day.
    if (!KNOWN.has(name)) continue;
    if (typeof e.timestamp !== 'number' || !Number.isInteger(e.timestamp)) throw new WebhookRefused('MALFORMED', `Event ${i} has no whole-second timestamp`);
    const event: SendGridEvent = { email: text('email'), timestamp: e.timestamp, event: name as SendGridEventName, sg_event_id: text('sg_event_id'), sg_message_id: text('sg_message_id') };
    const reason = optional('reason');
    const url = optional('url');
    const deliveryId = optional('deliveryId');
    const type = optional('type');
    if (type !== undefined) event.type = type;
    if (reason !== undefined) event.reason = reason;
    if (url !== undefined) event.url = url;
    if (deliveryId !== undefined) event.deliveryId = deliveryId;
    events.push(event);
  }
  return events;
}
