import { describe, expect, it } from 'vitest';
import { reportOfSendGrid, reportOfTwilio } from './webhooks.service.js';
import type { SendGridEvent } from './webhooks/sendgrid-events.js';

const DELIVERY_ID = '6f1c2f57-0d0e-4d43-9c43-0a4c1d2e3f40';
const X_MESSAGE_ID = 'W4jFHfQvSCyYVOyZpUcJiA';
const SID = `SM${'3'.repeat(32)}`;

const event = (name: SendGridEvent['event'], extra: Partial<SendGridEvent> = {}): SendGridEvent => ({
  email: 'ada@example.com',
  timestamp: 1_764_000_000,
  event: name,
  sg_event_id: 'ZGVsaXZlcmVkLTAtMjQ',
  sg_message_id: `${X_MESSAGE_ID}.filterdrecv-5b6c8f9-1-64F0A0D1-2B.0`,
  deliveryId: DELIVERY_ID,
  ...extra,
});

const base = { provider: 'sendgrid', providerMessageId: X_MESSAGE_ID, deliveryId: DELIVERY_ID };

describe('reportOfSendGrid', () => {
  it('takes the provider message id from sg_message_id, before the first dot', () => {
    expect(reportOfSendGrid(event('delivered'))?.providerMessageId).toBe(X_MESSAGE_ID);
    expect(reportOfSendGrid(event('delivered', { sg_message_id: 'abc.def.ghi' }))?.providerMessageId).toBe('abc');
    // An id without a filter suffix is the id itself.
    expect(reportOfSendGrid(event('delivered', { sg_message_id: 'bare-id' }))?.providerMessageId).toBe('bare-id');
  });

  it('carries our delivery id only when the event has one', () => {
    const { deliveryId: _, ...withoutId } = event('open');
    const report = reportOfSendGrid(withoutId)!;
    expect(report).toEqual({ provider: 'sendgrid', providerMessageId: X_MESSAGE_ID, status: 'OPENED' });
    expect('deliveryId' in report).toBe(false);
  });

  it('maps delivered, open and click to their steps, without suppressing', () => {
    expect(reportOfSendGrid(event('delivered'))).toEqual({ ...base, status: 'DELIVERED' });
    expect(reportOfSendGrid(event('open'))).toEqual({ ...base, status: 'OPENED' });
    expect(reportOfSendGrid(event('click', { url: 'https://storyloom.test/s/1' }))).toEqual({ ...base, status: 'CLICKED' });
  });

  it('a bounce is a hard bounce: BOUNCED, and the address is suppressed', () => {
    expect(reportOfSendGrid(event('bounce', { type: 'bounce', reason: '550 5.1.1 The email account does not exist' }))).toEqual({
      ...base,
      status: 'BOUNCED',
      suppress: true,
      reason: '550 5.1.1 The email account does not exist',
    });
    // Without a type or reason.
    expect(reportOfSendGrid(event('bounce'))).toEqual({ ...base, status: 'BOUNCED', suppress: true, reason: 'bounce' });
  });

  it('a bounce of type "blocked" is temporary: this message FAILED, the address is not suppressed', () => {
    const report = reportOfSendGrid(event('bounce', { type: 'blocked', reason: '421 try again later' }))!;
    expect(report).toEqual({ ...base, status: 'FAILED', reason: '421 try again later' });
    expect(report.suppress).toBeUndefined();
    expect(reportOfSendGrid(event('bounce', { type: 'blocked' }))).toEqual({ ...base, status: 'FAILED', reason: 'blocked' });
  });

  it('dropped is FAILED; the address is suppressed only when SendGrid dropped it for the address itself', () => {
    expect(reportOfSendGrid(event('dropped', { reason: 'Bounced Address' }))).toEqual({ ...base, status: 'FAILED', reason: 'Bounced Address', suppress: true });
    expect(reportOfSendGrid(event('dropped', { reason: 'Spam Reporting Address' }))?.suppress).toBe(true);
    expect(reportOfSendGrid(event('dropped', { reason: 'Invalid' }))?.suppress).toBe(true);
    // Dropped for something about the message or the account: the address is fine.
    for (const reason of ['Invalid SMTPAPI header', 'Spam Content (if spam checker app enabled)', 'Unsubscribed Address', 'Recipient List over Package Quota']) {
      expect(reportOfSendGrid(event('dropped', { reason })), reason).toEqual({ ...base, status: 'FAILED', reason, suppress: false });
    }
    expect(reportOfSendGrid(event('dropped'))).toEqual({ ...base, status: 'FAILED', reason: 'dropped', suppress: false });
  });

  it('a spam complaint means the message arrived: DELIVERED at least, and the address opted out', () => {
    expect(reportOfSendGrid(event('spamreport'))).toEqual({ ...base, status: 'DELIVERED', suppress: 'OPT_OUT', reason: 'spam complaint' });
  });

  it('processed, deferred and unsubscribe events change nothing', () => {
    for (const name of ['processed', 'deferred', 'unsubscribe', 'group_unsubscribe', 'group_resubscribe'] as const) {
      expect(reportOfSendGrid(event(name)), name).toBeNull();
    }
  });
});

describe('reportOfTwilio', () => {
  const twilioBase = { provider: 'twilio', providerMessageId: SID, deliveryId: DELIVERY_ID };

  it('maps sent and delivered', () => {
    expect(reportOfTwilio({ messageSid: SID, status: 'sent' }, DELIVERY_ID)).toEqual({ ...twilioBase, status: 'SENT' });
    expect(reportOfTwilio({ messageSid: SID, status: 'delivered' }, DELIVERY_ID)).toEqual({ ...twilioBase, status: 'DELIVERED' });
  });

  it('leaves the delivery id out when the callback URL had none', () => {
    const report = reportOfTwilio({ messageSid: SID, status: 'delivered' }, null)!;
    expect(report).toEqual({ provider: 'twilio', providerMessageId: SID, status: 'DELIVERED' });
    expect('deliveryId' in report).toBe(false);
  });

  it('undelivered with a hard code (30005, unknown handset) is BOUNCED and suppresses the number', () => {
    expect(reportOfTwilio({ messageSid: SID, status: 'undelivered', errorCode: '30005' }, DELIVERY_ID)).toEqual({
      ...twilioBase,
      status: 'BOUNCED',
      suppress: true,
      reason: 'undelivered (Twilio error 30005)',
    });
    // A recipient who replied STOP.
    // 21610: the recipient replied STOP: an opt-out, which their account cannot lift.
    expect(reportOfTwilio({ messageSid: SID, status: 'failed', errorCode: '21610' }, DELIVERY_ID)).toMatchObject({ status: 'BOUNCED', suppress: 'OPT_OUT' });
  });

  it('undelivered with a soft code (30003, unreachable handset) is FAILED, and the number stays', () => {
    const report = reportOfTwilio({ messageSid: SID, status: 'undelivered', errorCode: '30003' }, DELIVERY_ID)!;
    expect(report).toEqual({ ...twilioBase, status: 'FAILED', reason: 'undelivered (Twilio error 30003)' });
    expect(report.suppress).toBeUndefined();
  });

  it('failed without a code is FAILED, not suppressed', () => {
    expect(reportOfTwilio({ messageSid: SID, status: 'failed' }, DELIVERY_ID)).toEqual({ ...twilioBase, status: 'FAILED', reason: 'failed' });
  });

  it('statuses on the way (queued, sending, accepted) and unknown ones change nothing', () => {
    for (const status of ['queued', 'sending', 'accepted', 'scheduled', 'read', 'something_new']) {
      expect(reportOfTwilio({ messageSid: SID, status }, DELIVERY_ID), status).toBeNull();
    }
  });
});
