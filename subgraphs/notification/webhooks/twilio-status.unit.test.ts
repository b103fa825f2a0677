import { createHmac } from 'node:crypto';
import twilio from 'twilio';
import { describe, expect, it } from 'vitest';
import { WebhookRefused } from './refused.js';
import { verifyTwilioStatusCallback } from './twilio-status.js';

const AUTH_TOKEN = '12345678901234567890123456789012';
const CALLBACK_URL = 'https://hooks.storyloom.test/webhooks/twilio/status?delivery=0b5e4f1c';
const PARAMS = {
  ApiVersion: '2010-04-01',
  AccountSid: `AC${'1'.repeat(32)}`,
  MessageSid: `SM${'2'.repeat(32)}`,
  SmsSid: `SM${'2'.repeat(32)}`,
  MessageStatus: 'delivered',
  SmsStatus: 'delivered',
  From: '+15005550006',
  To: '+14155550123',
};

/**
 * Twilio's signature, computed here from its documentation rather than by the SDK under test:
 * base64(HMAC-SHA1(authToken, the full URL followed by each parameter, sorted by name, as name then value)).
 */
function sign(authToken: string, url: string, params: Record<string, string>): string {
  let data = url;
  for (const name of Object.keys(params).sort()) data += name + params[name];
  return createHmac('sha1', authToken).update(data, 'utf8').digest('base64');
}

const refusal = (call: () => unknown): WebhookRefused => {
  try {
    call();
  } catch (error) {
    expect(error).toBeInstanceOf(WebhookRefused);
    return error as WebhookRefused;
  }
  return expect.unreachable('the callback was accepted');
};

describe('verifyTwilioStatusCallback', () => {
  it('accepts a callback signed as Twilio signs it, and reads the sid and status', () => {
    const signature = sign(AUTH_TOKEN, CALLBACK_URL, PARAMS);
    // The hand-made signature and the SDK's agree: the test is not checking the SDK against itself.
    expect(signature).toBe(twilio.getExpectedTwilioSignature(AUTH_TOKEN, CALLBACK_URL, PARAMS));
    expect(verifyTwilioStatusCallback({ authToken: AUTH_TOKEN, signature, url: CALLBACK_URL, params: PARAMS })).toEqual({ messageSid: PARAMS.MessageSid, status: 'delivered' });
  });

  it('reads the error code of an undelivered message', () => {
    const params = { ...PARAMS, MessageStatus: 'undelivered', SmsStatus: 'undelivered', ErrorCode: '30003' };
    expect(verifyTwilioStatusCallback({ authToken: AUTH_TOKEN, signature: sign(AUTH_TOKEN, CALLBACK_URL, params), url: CALLBACK_URL, params })).toEqual({
      messageSid: PARAMS.MessageSid,
      status: 'undelivered',
      errorCode: '30003',
    });
  });

  it('accepts the CALLBACK_URL with the default port Twilio may have signed it with', () => {
    const withPort = CALLBACK_URL.replace('.test/', '.test:443/');
    expect(verifyTwilioStatusCallback({ authToken: AUTH_TOKEN, signature: sign(AUTH_TOKEN, withPort, PARAMS), url: CALLBACK_URL, params: PARAMS }).status).toBe('delivered');
  });

  it('refuses a callback without a signature', () => {
    for (const signature of [undefined, null, '']) {
      expect(refusal(() => verifyTwilioStatusCallback({ authToken: AUTH_TOKEN, signature, url: CALLBACK_URL, params: PARAMS })).refusal).toBe('UNSIGNED');
    }
  });

  it('refuses a tampered, added or removed field', () => {
    const signature = sign(AUTH_TOKEN, CALLBACK_URL, PARAMS);
    const tampered = [{ ...PARAMS, MessageStatus: 'failed' }, { ...PARAMS, ErrorCode: '30007' }, { ...PARAMS, MessageSid: `SM${'3'.repeat(32)}` }, (({ SmsStatus: _, ...rest }) => rest)(PARAMS)];
    for (const params of tampered) {
      expect(refusal(() => verifyTwilioStatusCallback({ authToken: AUTH_TOKEN, signature, url: CALLBACK_URL, params })).refusal).toBe('BAD_SIGNATURE');
    }
  });

  it('refuses a signature made for another CALLBACK_URL', () => {
    const signature = sign(AUTH_TOKEN, CALLBACK_URL, PARAMS);
    for (const url of [CALLBACK_URL.replace('0b5e4f1c', 'ffffffff'), CALLBACK_URL.replace('/status', '/inbound'), CALLBACK_URL.replace('https:', 'http:'), CALLBACK_URL.replace('hooks.', 'evil.'), 'not a url']) {
      expect(refusal(() => verifyTwilioStatusCallback({ authToken: AUTH_TOKEN, signature, url, params: PARAMS })).refusal).toBe('BAD_SIGNATURE');
    }
  });

  it('refuses a signature made with another auth token', () => {
    const signature = sign('00000000000000000000000000000000', CALLBACK_URL, PARAMS);
    expect(refusal(() => verifyTwilioStatusCallback({ authToken: AUTH_TOKEN, signature, url: CALLBACK_URL, params: PARAMS })).refusal).toBe('BAD_SIGNATURE');
  });

  it('refuses a signed callback that names no message or status', () => {
    const { MessageSid: _, SmsSid: __, ...params } = PARAMS;
    const error = refusal(() => verifyTwilioStatusCallback({ authToken: AUTH_TOKEN, signature: sign(AUTH_TOKEN, CALLBACK_URL, params), url: CALLBACK_URL, params }));
    expect(error.refusal).toBe('MALFORMED');
  });

  it('keeps the auth token out of its refusals, and insists on having one', () => {
    const error = refusal(() => verifyTwilioStatusCallback({ authToken: AUTH_TOKEN, signature: 'x', url: CALLBACK_URL, params: PARAMS }));
    expect(error.message).not.toContain(AUTH_TOKEN);
    expect(() => verifyTwilioStatusCallback({ authToken: '', signature: sign('', CALLBACK_URL, PARAMS), url: CALLBACK_URL, params: PARAMS })).toThrow(RangeError);
  });
});
