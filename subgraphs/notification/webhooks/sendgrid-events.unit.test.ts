import { EventWebhook } from '@sendgrid/eventwebhook';
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createSendGridEventSigner, SIGNATURE_HEADER, TIMESTAMP_HEADER, type SignedPost } from '../../../test/fakes/sendgrid.js';
import { WebhookRefused } from './refused.js';
import { verifySendGridWebhook, type SendGridWebhookInput } from './sendgrid-events.js';

const signer = createSendGridEventSigner();
const NOW = new Date('2026-03-01T10:00:00Z');
const nowSeconds = NOW.getTime() / 1000;

const delivered = {
  email: 'ann@example.org',
  timestamp: nowSeconds - 5,
  'smtp-id': '<W86EgYT6SQKk0lRflfLRsA@ismtpd0001p1lon1.sendgrid.net>',
  event: 'delivered',
  sg_event_id: 'ZGVsaXZlcmVkLTAtMjQ',
  sg_message_id: 'W86EgYT6SQKk0lRflfLRsA.filterdrecv-6f7c8d9b5-x2k4p-1-65F1C2A1-1.0',
  response: '250 OK',
  deliveryId: '7d3c1f0e-5b2a-4c1d-9e8f-0a1b2c3d4e5f',
};
const bounce = { ...delivered, event: 'bounce', sg_event_id: 'Ym91bmNlLTAtMjQ', reason: '550 5.1.1 The email account does not exist.', type: 'bounce' };
const click = { ...delivered, event: 'click', sg_event_id: 'Y2xpY2stMC0yNA', url: 'https://storyloom.app/stories/1' };

/** The verifier's input for a post, as a handler would pass its headers and raw body. */
const input = (post: SignedPost, overrides: Partial<SendGridWebhookInput> = {}): SendGridWebhookInput => ({
  publicKey: signer.publicKey,
  signature: post.headers[SIGNATURE_HEADER],
  timestamp: post.headers[TIMESTAMP_HEADER],
  rawBody: post.body,
  now: NOW,
  ...overrides,
});

const refusalOf = (run: () => unknown): WebhookRefused => {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(WebhookRefused);
    return error as WebhookRefused;
  }
  return expect.fail('the post should have been refused');
};

describe('verifySendGridWebhook', () => {
  it('returns the events of a genuine post, deliveryId read back from custom_args', () => {
    const post = signer.signedEvents([delivered, bounce, click], { timestamp: nowSeconds });
    expect(verifySendGridWebhook(input(post))).toEqual([
      { email: 'ann@example.org', timestamp: nowSeconds - 5, event: 'delivered', sg_event_id: delivered.sg_event_id, sg_message_id: delivered.sg_message_id, deliveryId: delivered.deliveryId },
      { email: 'ann@example.org', timestamp: nowSeconds - 5, event: 'bounce', sg_event_id: bounce.sg_event_id, sg_message_id: bounce.sg_message_id, reason: bounce.reason, deliveryId: delivered.deliveryId, type: 'bounce' },
      { email: 'ann@example.org', timestamp: nowSeconds - 5, event: 'click', sg_event_id: click.sg_event_id, sg_message_id: click.sg_message_id, url: click.url, deliveryId: delivered.deliveryId },
    ]);
  });

  it('signs as SendGrid does: the official library accepts the fake\'s posts', () => {
    const post = signer.signedEvents([delivered]);
    const official = new EventWebhook();
    expect(official.verifySignature(official.convertPublicKeyToECDSA(signer.publicKey), post.body, post.headers[SIGNATURE_HEADER]!, post.headers[TIMESTAMP_HEADER]!)).toBe(true);
  });

  it('reads an event without custom_args or of a later kind without refusing the batch', () => {
    const { deliveryId: _, ...plain } = delivered;
    const post = signer.signedEvents([plain, { ...delivered, event: 'machine_opened' }], { timestamp: nowSeconds });
    expect(verifySendGridWebhook(input(post))).toEqual([expect.not.objectContaining({ deliveryId: expect.anything() })]);
  });

  it('refuses an unsigned post', () => {
    const post = signer.signedEvents([delivered], { timestamp: nowSeconds });
    expect(refusalOf(() => verifySendGridWebhook(input(post, { signature: undefined }))).refusal).toBe('UNSIGNED');
    expect(refusalOf(() => verifySendGridWebhook(input(post, { timestamp: undefined }))).refusal).toBe('UNSIGNED');
    expect(refusalOf(() => verifySendGridWebhook(input(post, { signature: '' }))).refusal).toBe('UNSIGNED');
  });

  it('refuses a tampered body, even by one byte or the trailing CRLF', () => {
    const post = signer.signedEvents([delivered], { timestamp: nowSeconds });
    const tampered = Buffer.from(post.body.toString('utf8').replace('delivered', 'bounce   '));
    expect(tampered.length).toBe(post.body.length);
    expect(refusalOf(() => verifySendGridWebhook(input(post, { rawBody: tampered }))).refusal).toBe('BAD_SIGNATURE');
    const reserialised = Buffer.from(JSON.stringify(JSON.parse(post.body.toString('utf8'))));
    expect(refusalOf(() => verifySendGridWebhook(input(post, { rawBody: reserialised }))).refusal).toBe('BAD_SIGNATURE');
  });

  it('refuses a signature moved to another timestamp, or not a signature at all', () => {
    const post = signer.signedEvents([delivered], { timestamp: nowSeconds });
    expect(refusalOf(() => verifySendGridWebhook(input(post, { timestamp: String(nowSeconds - 1) }))).refusal).toBe('BAD_SIGNATURE');
    expect(refusalOf(() => verifySendGridWebhook(input(post, { signature: 'bm90IGEgc2lnbmF0dXJl' }))).refusal).toBe('BAD_SIGNATURE');
    expect(refusalOf(() => verifySendGridWebhook(input(post, { timestamp: 'yesterday' }))).refusal).toBe('BAD_SIGNATURE');
    expect(refusalOf(() => verifySendGridWebhook(input(post, { signature: [post.headers[SIGNATURE_HEADER]!, post.headers[SIGNATURE_HEADER]!] }))).refusal).toBe('BAD_SIGNATURE');
  });

  it('refuses a post signed with another key', () => {
    const stranger = createSendGridEventSigner();
    const post = stranger.signedEvents([delivered], { timestamp: nowSeconds });
    expect(refusalOf(() => verifySendGridWebhook(input(post))).refusal).toBe('BAD_SIGNATURE');
  });

  it('refuses a stale or future timestamp, past maxAgeSeconds either way', () => {
    const old = signer.signedEvents([delivered], { timestamp: nowSeconds - 301 });
    const stale = refusalOf(() => verifySendGridWebhook(input(old)));
    expect(stale).toMatchObject({ refusal: 'STALE', message: expect.stringContaining('301 s old') });
    expect(verifySendGridWebhook(input(old, { maxAgeSeconds: 600 }))).toHaveLength(1);
    const future = signer.signedEvents([delivered], { timestamp: nowSeconds + 301 });
    expect(refusalOf(() => verifySendGridWebhook(input(future))).message).toContain('in the future');
    expect(verifySendGridWebhook(input(signer.signedEvents([delivered], { timestamp: nowSeconds - 299 })))).toHaveLength(1);
  });

  it('refuses a genuine post whose events are not SendGrid\'s shape', () => {
    expect(verifySendGridWebhook(input(signer.signedEvents([], { timestamp: nowSeconds })))).toEqual([]);
    for (const body of ['{"event":"delivered"}', 'not json']) {
      expect(refusalOf(() => verifySendGridWebhook(input(signer.signedEvents(body, { timestamp: nowSeconds })))).refusal).toBe('MALFORMED');
    }
    const { sg_message_id: _, ...withoutId } = delivered;
    for (const events of [[withoutId], [{ ...delivered, timestamp: '1700000000' }], [{ ...delivered, email: 42 }], ['delivered']]) {
      const post = signer.signedEvents(events as object[], { timestamp: nowSeconds });
      expect(refusalOf(() => verifySendGridWebhook(input(post))).refusal).toBe('MALFORMED');
    }
  });

  it('fails loudly on a verification key that is not a P-256 public key: our configuration, not their post', () => {
    const post = signer.signedEvents([delivered], { timestamp: nowSeconds });
    expect(() => verifySendGridWebhook(input(post, { publicKey: 'not a key' }))).toThrow(RangeError);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
    expect(() => verifySendGridWebhook(input(post, { publicKey: rsa }))).toThrow(/P-256/);
  });
});
