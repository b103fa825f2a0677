/**
 * The Twilio adapter of the SMS port, through the official SDK (`twilio` 6.2.0): one
 * `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` per send (Basic auth
 * AccountSid:AuthToken; form To, From | MessagingServiceSid, Body, StatusCallback), answered 201
 * with the message, whose `sid` (SM…) is what status callbacks name it by.
 *
 * The SDK builds every URL on api.twilio.com and takes no AbortSignal, so the client is given an
 * httpClient of ours (a twilio.RequestClient) that moves each request to `baseUrl` and hands the
 * send's signal, caller's abort and deadline together, to axios underneath.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import twilio from 'twilio';
import type RequestClient from 'twilio/lib/base/RequestClient.js';
import { redact, retryAfterMs } from '../../../platform/http/provider-http.js';
import { DeliveryError, type SmsSender } from './channel.js';
import { failureOfStatus } from './resilience.js';

export interface TwilioSenderOptions {
  /** AC…; the SDK refuses any other. */
  accountSid: string;
  authToken: string;
  /** An E.164 number or alphanumeric sender id of the account; or else messagingServiceSid. */
  from?: string;
  /** MG…: Twilio picks the sender from the service's pool. */
  messagingServiceSid?: string;
  /** An origin (and optional path prefix) instead of https://api.twilio.com: a fake, a proxy. */
  baseUrl?: string;
  /** The whole call, connection to the last byte of the answer. */
  timeoutMs: number;
}

/** What one send hands to the httpClient and reads back from it, across the SDK that sits between them. */
interface Call {
  signal: AbortSignal;
  /** The HTTP status Twilio answered, when it answered. */
  status?: number;
  retryAfter?: string;
}

// The SDK's `messages.create()` has no per-call options: the only way to give one send's signal
// to the request it makes is to carry it alongside, through the promise chain.
const currentCall = new AsyncLocalStorage<Call>();

/** twilio.RequestClient, moved to another origin, and cancellable per send. */
class RedirectedRequestClient extends twilio.RequestClient {
  constructor(
    private readonly baseUrl: URL | null,
    timeoutMs: number,
  ) {
    // `timeout` is axios's socket-idle timer, a second line behind the send's own deadline.
    super({ timeout: timeoutMs, autoRetry: false });
    this.axios.interceptors.request.use((config) => {
      const call = currentCall.getStore();
      if (call) config.signal = call.signal;
      return config;
    });
  }

  override async request<TData>(opts: RequestClient.RequestOptions<TData>) {
    const answer = await super.request({ ...opts, uri: this.moved(opts.uri) });
    const call = currentCall.getStore();
    if (call) {
      call.status = answer.statusCode;
      // The SDK's RestException keeps the body, not the headers.
      const retryAfter = (answer.headers as Record<string, unknown> | undefined)?.['retry-after'];
      if (typeof retryAfter === 'string') call.retryAfter = retryAfter;
    }
    return answer;
  }

  private moved(uri: string): string {
    if (!this.baseUrl) return uri;
    const url = new URL(uri);
    return `${this.baseUrl.origin}${this.baseUrl.pathname.replace(/\/+$/, '')}${url.pathname}${url.search}`;
  }
}

export function createTwilioSender(options: TwilioSenderOptions): SmsSender {
  const { accountSid, authToken, from, messagingServiceSid, timeoutMs } = options;
  if (!/^AC[0-9a-fA-F]{32}$/.test(accountSid ?? '')) throw new RangeError('createTwilioSender: accountSid must be AC followed by 32 hex digits');
  if (!authToken) throw new RangeError('createTwilioSender: authToken is required');
  // With both, which one Twilio honours is its business, not ours to guess: ask for one.
  if (!from === !messagingServiceSid) throw new RangeError('createTwilioSender: give exactly one of from and messagingServiceSid');
  if (messagingServiceSid && !messagingServiceSid.startsWith('MG')) throw new RangeError('createTwilioSender: messagingServiceSid must start with MG');
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new RangeError('createTwilioSender: timeoutMs must be a positive integer');
  const baseUrl = options.baseUrl ? httpUrl(options.baseUrl) : null;
  const client = twilio(accountSid, authToken, { httpClient: new RedirectedRequestClient(baseUrl, timeoutMs) });
  // The Basic credential is what a confused proxy would echo back.
  const secrets = [authToken, Buffer.from(`${accountSid}:${authToken}`).toString('base64')];
  const safe = (text: string) => secrets.reduce(redact, text);

  return {
    name: 'twilio',
    async send(message, { signal }) {
      signal.throwIfAborted();
      const deadline = AbortSignal.timeout(timeoutMs);
      const call: Call = { signal: AbortSignal.any([signal, deadline]) };
      try {
        const sent = await currentCall.run(call, () =>
          client.messages.create({
            to: message.to,
            body: message.body,
            ...(messagingServiceSid ? { messagingServiceSid } : { from }),
            ...(message.statusCallbackUrl ? { statusCallback: message.statusCallbackUrl } : {}),
          }),
        );
        if (typeof sent.sid !== 'string' || !sent.sid.startsWith('SM')) {
          // Twilio said yes and we cannot tell to what: sending again may send it twice.
          throw new DeliveryError('TIMEOUT', `Twilio answered ${call.status ?? 'success'} without a message sid: the message may have been sent`);
        }
        return { provider: 'twilio', providerMessageId: sent.sid };
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        throw failure(error, call, deadline.aborted, timeoutMs, safe);
      }
    },
  };
}

/** What the SDK (or axios under it) threw, as the port's DeliveryError. */
function failure(error: unknown, call: Call, timedOut: boolean, timeoutMs: number, safe: (text: string) => string): DeliveryError {
  if (error instanceof DeliveryError) return new DeliveryError(error.reason, safe(error.message), error.retryAfterMs);
  const status = call.status;
  if (status !== undefined && (status < 200 || status >= 300)) return httpFailure(status, twilioError(error), call.retryAfter, safe);
  if (timedOut || isAxiosTimeout(error)) return new DeliveryError('TIMEOUT', `Twilio did not answer within ${timeoutMs} ms: the message may have been sent`);
  const cause = error instanceof Error ? error.message : String(error);
  // A 2xx whose body is not JSON (the SDK's JSON.parse threw): taken, perhaps, but unreadable.
  if (status !== undefined) return new DeliveryError('TIMEOUT', safe(`Twilio answered ${status} with a body that is not a message (${cause}): the message may have been sent`));
  return new DeliveryError('TRANSIENT', safe(`Could not reach Twilio: ${cause}`));
}

/**
 * Twilio codes that a 400 carries when the fault is our sender, not the recipient: every message
 * would fail the same way at Twilio, and another provider may still deliver it. 21212: invalid
 * From; 21606: From is not an SMS-capable number of this account.
 */
const SENDER_FAULTS = new Set([21212, 21606]);

/** Twilio's answer, through the one table of what a status means (resilience.ts), and its sender faults. */
function httpFailure(status: number, said: { code?: number; message?: string }, retryAfter: string | undefined, safe: (text: string) => string): DeliveryError {
  const text = [said.message, said.code ? `(code ${said.code})` : null].filter(Boolean).join(' ');
  const detail = text ? safe(text).slice(0, 1000) : null;
  if (status === 400 && said.code !== undefined && SENDER_FAULTS.has(said.code)) {
    return new DeliveryError('AUTH', `Twilio refused our sender (400): ${detail}: check the From number or messaging service`);
  }
  return failureOfStatus('Twilio', status, detail, retryAfterMs(retryAfter));
}

/** The `code` and `message` of a RestException (`{ code, message, more_info, status }`) or a TwilioServiceException. */
function twilioError(error: unknown): { code?: number; message?: string } {
  if (typeof error !== 'object' || error === null) return {};
  const { code, message, detail } = error as { code?: unknown; message?: unknown; detail?: unknown };
  const text = typeof detail === 'string' && detail ? detail : typeof message === 'string' ? message : undefined;
  return { ...(typeof code === 'number' ? { code } : {}), ...(text ? { message: text } : {}) };
}

/** axios's own timer (ECONNABORTED "timeout of N ms exceeded", ETIMEDOUT). */
function isAxiosTimeout(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ECONNABORTED' || code === 'ETIMEDOUT';
}

function httpUrl(value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new RangeError(`createTwilioSender: baseUrl is not a URL: ${JSON.stringify(value)}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new RangeError('createTwilioSender: baseUrl must be http(s)');
  return url;
}
