/**
 * Twilio's SMS status callbacks: a form POST to the message's StatusCallback URL with
 * MessageSid, MessageStatus, ErrorCode (failed, undelivered), AccountSid, From, To, signed in
 * X-Twilio-Signature = base64(HMAC-SHA1(authToken, url + each sorted key followed by its value)).
 * Nothing else proves a callback came from Twilio, so an unsigned or mis-signed one is refused
 * before anything in it is believed.
 */
import twilio from 'twilio';
import { WebhookRefused } from './refused.js';

/** The statuses Twilio documents for an outgoing message; it may add others. */
export type TwilioMessageStatus =
  | 'accepted'
  | 'scheduled'
  | 'canceled'
  | 'queued'
  | 'sending'
  | 'sent'
  | 'failed'
  | 'delivered'
  | 'undelivered'
  | 'receiving'
  | 'received'
  | 'read'
  | 'partially_delivered';

export interface TwilioStatusCallback {
  authToken: string;
  /** The X-Twilio-Signature header, as received. */
  signature: string | null | undefined;
  /**
   * The full URL Twilio posted to, as Twilio saw it: the public scheme, host, path and query,
   * not the one a proxy in front of us forwarded to.
   */
  url: string;
  /** The parsed form body, every field of it: the signature covers them all. */
  params: Record<string, string | string[] | undefined>;
}

export interface TwilioStatusUpdate {
  /** SM…: the providerMessageId the send returned. */
  messageSid: string;
  /** One of TwilioMessageStatus, as Twilio sent it (kept when Twilio adds a new one). */
  status: string;
  /** Twilio's error code of a failed or undelivered message, e.g. "30003" (unreachable handset). */
  errorCode?: string;
}


export function verifyTwilioStatusCallback(callback: TwilioStatusCallback): TwilioStatusUpdate {
  const { authToken, signature, url, params } = callback;
  // A missing token is our misconfiguration, not a bad callback: fail loudly, never accept.
  if (!authToken) throw new RangeError('verifyTwilioStatusCallback: authToken is required');
  if (!signature) throw new WebhookRefused('UNSIGNED', 'The status callback has no X-Twilio-Signature');
  const signed = Object.fromEntries(Object.entries(params).filter((entry): entry is [string, string | string[]] => entry[1] !== undefined));
  let valid: boolean;
  try {
    // Tries the URL with and without its default port, as Twilio's own helpers do; compares in constant time.
    valid = twilio.validateRequest(authToken, signature, url, signed);
  } catch {
    valid = false; // `url` is not a URL: nothing Twilio could have signed
  }
  if (!valid) throw new WebhookRefused('BAD_SIGNATURE', 'The status callback\'s X-Twilio-Signature does not match its URL and fields');

  const messageSid = single(signed.MessageSid);
  const status = single(signed.MessageStatus);
  if (!messageSid || !status) throw new WebhookRefused('MALFORMED', 'The status callback has no MessageSid or MessageStatus');
  const errorCode = single(signed.ErrorCode);
  return { messageSid, status, ...(errorCode ? { errorCode } : {}) };
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
