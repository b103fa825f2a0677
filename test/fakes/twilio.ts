/**
 * A fake Twilio Messaging API on loopback, in the wire format the `twilio` SDK (6.2.0) speaks:
 * `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, Basic auth AccountSid:AuthToken, a form
 * body (To, From | MessagingServiceSid, Body, StatusCallback), answered 201 with the message
 * (`sid` SM…, `status` queued, or accepted through a messaging service); errors are
 * `{ code, message, more_info, status }`. It also makes the status callbacks Twilio would post
 * for a message, signed as Twilio signs them, and can post them.
 *
 * The HTTP plumbing (request log, failNext, down/up, stall) is provider-fake.ts's; the SMS
 * controller both SMS fakes share, startSmsProviderFake, is re-exported here as before.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { startSmsProviderFake, type SmsFakeAnswer, type SmsFakeController } from './provider-fake.js';

export { startSmsProviderFake, type SmsFakeAnswer, type SmsFakeController, type SmsFakeRequest, type SmsProviderWire } from './provider-fake.js';

export type TwilioFakeStatus = 'queued' | 'sending' | 'sent' | 'delivered' | 'undelivered' | 'failed' | 'canceled' | 'read';

/** A message the fake accepted. */
export interface TwilioFakeMessage {
  sid: string;
  to: string;
  from: string | null;
  messagingServiceSid: string | null;
  body: string;
  statusCallback: string | null;
  /** Every form field as sent. */
  form: Record<string, string>;
}

/** A status callback as Twilio would post it. */
export interface SignedTwilioCallback {
  url: string;
  /** The form fields. */
  params: Record<string, string>;
  /** `params`, form-encoded: the request body. */
  body: string;
  /** The X-Twilio-Signature header. */
  signature: string;
}

export interface TwilioFake extends SmsFakeController {
  readonly accountSid: string;
  readonly authToken: string;
  /** Accepted messages, in order. */
  readonly messages: TwilioFakeMessage[];
  /**
   * The callback Twilio would post about message `sid` reaching `status`, to `url` (default:
   * the StatusCallback the message was sent with), signed with the fake's auth token.
   * `errorCode` goes with failed and undelivered (default 30003, unreachable handset).
   */
  statusCallback(sid: string, status: TwilioFakeStatus, url?: string, options?: { errorCode?: string }): SignedTwilioCallback;
  /** statusCallback(), posted as Twilio posts it; resolves with the receiver's HTTP status. */
  postStatusCallback(sid: string, status: TwilioFakeStatus, url?: string, options?: { errorCode?: string }): Promise<{ status: number; callback: SignedTwilioCallback }>;
}

const API_VERSION = '2010-04-01';
/** The number a messaging service picks from its pool. */
export const TWILIO_FAKE_POOL_NUMBER = '+15005550006';
const E164 = /^\+[1-9]\d{6,14}$/;

/** Twilio's error body. */
export function twilioError(status: number, code: number, message: string): { code: number; message: string; more_info: string; status: number } {
  return { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status };
}

/** What failNext answers when given no body: a code Twilio uses for that status. */
const DEFAULT_ERRORS: Record<number, [number, string]> = {
  400: [21211, "The 'To' number +1555 is not a valid phone number."],
  401: [20003, 'Authenticate'],
  403: [20003, 'Permission Denied'],
  404: [20404, 'The requested resource was not found'],
  429: [20429, 'Too Many Requests'],
  500: [20500, 'An internal server error has occurred'],
  503: [20503, 'Service unavailable'],
};

/** base64(HMAC-SHA1(authToken, url + each key, sorted, followed by its value)): Twilio's webhook signature. */
export function twilioSignature(authToken: string, url: string, params: Record<string, string>): string {
  const data = Object.keys(params)
    .sort()
    .reduce((acc, key) => acc + key + params[key], url);
  return createHmac('sha1', authToken).update(data, 'utf8').digest('base64');
}

export async function startTwilioFake(options: { accountSid?: string; authToken?: string } = {}): Promise<TwilioFake> {
  const accountSid = options.accountSid ?? `AC${randomBytes(16).toString('hex')}`;
  const authToken = options.authToken ?? randomBytes(16).toString('hex');
  const messages: TwilioFakeMessage[] = [];
  const messagesPath = `/${API_VERSION}/Accounts/${accountSid}/Messages.json`;

  const controller = await startSmsProviderFake({
    error(status) {
      const [code, message] = DEFAULT_ERRORS[status] ?? [status >= 500 ? 20500 : 21100, `HTTP ${status}`];
      return twilioError(status, code, message);
    },
    answer(request) {
      const path = request.path.split('?')[0]!;
      if (!/^\/2010-04-01\/Accounts\/[^/]+\/Messages\.json$/.test(path) || request.method !== 'POST') {
        return { status: 404, body: twilioError(404, 20404, `The requested resource ${path} was not found`) };
      }
      const expected = `Basic ${Buffer.from(`${accountSid}:${authToken}`).toString('base64')}`;
      if (request.headers.authorization !== expected) return { status: 401, body: twilioError(401, 20003, 'Authenticate') };
      // The path names another account than the credentials do.
      if (path !== messagesPath) return { status: 403, body: twilioError(403, 20003, 'Permission Denied') };
      if (!/^application\/x-www-form-urlencoded/.test(request.headers['content-type'] ?? '')) return { status: 400, body: twilioError(400, 21100, 'Expected a form body') };
      const form = Object.fromEntries(new URLSearchParams(request.rawBody));
      const refuse = (code: number, message: string): SmsFakeAnswer => ({ status: 400, body: twilioError(400, code, message) });
      if (!form.To) return refuse(21604, "A 'To' phone number is required.");
      if (!E164.test(form.To)) return refuse(21211, `The 'To' number ${form.To} is not a valid phone number.`);
      if (!form.From && !form.MessagingServiceSid) return refuse(21603, "A 'From' phone number is required.");
      if (form.From && !E164.test(form.From) && !/^[A-Za-z0-9 ]{1,11}$/.test(form.From)) return refuse(21212, `The 'From' number ${form.From} is not a valid phone number, shortcode, or alphanumeric sender ID.`);
      if (!form.Body) return refuse(21602, 'Message body is required.');
      if (form.StatusCallback && !/^https?:\/\//.test(form.StatusCallback)) return refuse(21609, 'Invalid StatusCallback URL');

      const message: TwilioFakeMessage = {
        sid: `SM${randomBytes(16).toString('hex')}`,
        to: form.To,
        from: form.From ?? null,
        messagingServiceSid: form.MessagingServiceSid ?? null,
        body: form.Body,
        statusCallback: form.StatusCallback ?? null,
        form,
      };
      messages.push(message);
      return { status: 201, body: resource(message, accountSid) };
    },
  });

  const statusCallback = (sid: string, status: TwilioFakeStatus, url?: string, extra: { errorCode?: string } = {}): SignedTwilioCallback => {
    const message = messages.find((m) => m.sid === sid);
    if (!message) throw new Error(`The Twilio fake sent no message ${sid}`);
    const target = url ?? message.statusCallback;
    if (!target) throw new Error(`Message ${sid} was sent without a StatusCallback: name the URL`);
    const params: Record<string, string> = {
      ApiVersion: API_VERSION,
      AccountSid: accountSid,
      MessageSid: sid,
      SmsSid: sid,
      MessageStatus: status,
      SmsStatus: status,
      From: message.from ?? TWILIO_FAKE_POOL_NUMBER,
      To: message.to,
      ...(message.messagingServiceSid ? { MessagingServiceSid: message.messagingServiceSid } : {}),
      ...(status === 'failed' || status === 'undelivered' ? { ErrorCode: extra.errorCode ?? '30003' } : {}),
    };
    return { url: target, params, body: new URLSearchParams(params).toString(), signature: twilioSignature(authToken, target, params) };
  };

  return {
    ...controller,
    accountSid,
    authToken,
    messages,
    statusCallback,
    async postStatusCallback(sid, status, url, extra) {
      const callback = statusCallback(sid, status, url, extra);
      const response = await fetch(callback.url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8', 'x-twilio-signature': callback.signature, 'user-agent': 'TwilioProxy/1.1' },
        body: callback.body,
        signal: AbortSignal.timeout(10_000),
      });
      await response.body?.cancel();
      return { status: response.status, callback };
    },
  };
}

/** The message resource Twilio answers a create with. */
function resource(message: TwilioFakeMessage, accountSid: string): Record<string, unknown> {
  const now = new Date().toUTCString().replace('GMT', '+0000');
  const uri = `/${API_VERSION}/Accounts/${accountSid}/Messages/${message.sid}`;
  return {
    account_sid: accountSid,
    api_version: API_VERSION,
    body: message.body,
    date_created: now,
    date_sent: null,
    date_updated: now,
    direction: 'outbound-api',
    error_code: null,
    error_message: null,
    from: message.from,
    messaging_service_sid: message.messagingServiceSid,
    num_media: '0',
    num_segments: '1',
    price: null,
    price_unit: 'USD',
    sid: message.sid,
    // Through a messaging service Twilio first accepts the message, then queues it from a pool number.
    status: message.messagingServiceSid ? 'accepted' : 'queued',
    subresource_uris: { media: `${uri}/Media.json` },
    to: message.to,
    uri: `${uri}.json`,
  };
}
