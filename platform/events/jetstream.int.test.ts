import { randomBytes } from 'node:crypto';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, nanos, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { createEnvelope, type EventEnvelope } from './envelope.js';
import { JetStreamTransport } from './jetstream.js';
import { transportContract } from './transport.contract.js';

// JetStream refuses two streams with overlapping subjects on one server, and test files run in
// parallel against one nats-server: this file owns its own stream and subject prefix.
const token = randomBytes(5).toString('hex');
const stream = `EVENTS_TEST_${token}`;
const subjectPrefix = `t${token}.events.`;
const url = inject('natsUrl');

transportContract('JetStream', () => JetStreamTransport.connect({ url, stream, subjectPrefix }));

describe('JetStreamTransport', () => {
  let nc: NatsConnection;
  let jsm: JetStreamManager;

  beforeAll(async () => {
    nc = await connect({ servers: url });
    jsm = await jetstreamManager(nc);
  });
  afterAll(async () => {
    // A reused server (TEST_NATS_URL) must not accumulate test streams.
    for (const name of [stream, `${stream}_OWN`]) await jsm.streams.delete(name).catch(() => false);
    await nc.close();
  });

  it('creates a file-backed stream on <prefix>> with the duplicate window, and updates it on reconnect', async () => {
    const own = { url, stream: `${stream}_OWN`, subjectPrefix: `o${token}.events.` };
    const first = await JetStreamTransport.connect({ ...own, duplicateWindowMs: 60_000 });
    const created = await jsm.streams.info(own.stream);
    expect(created.config.subjects).toEqual([`o${token}.events.>`]);
    expect(created.config.storage).toBe('file');
    expect(created.config.duplicate_window).toBe(nanos(60_000));

    const second = await JetStreamTransport.connect({ ...own, duplicateWindowMs: 30_000 });
    const updated = await jsm.streams.info(own.stream);
    expect(updated.config.duplicate_window).toBe(nanos(30_000));
    expect(updated.config.subjects).toEqual([`o${token}.events.>`]);
    await Promise.all([first.close(), second.close()]);
  });

  it('publishes each event on <prefix><type> with the event id as message id', async () => {
    const transport = await JetStreamTransport.connect({ url, stream, subjectPrefix });
    const event = createEnvelope({ type: `m${token}.story.created`, payload: { n: 1 } }, { serviceName: 'test' });
    await transport.publish(event);
    await transport.close();
    const stored = await jsm.streams.getMessage(stream, { last_by_subj: `${subjectPrefix}m${token}.story.created` });
    expect(stored?.header.get('Nats-Msg-Id')).toBe(event.id);
    expect(stored?.json<EventEnvelope>()).toEqual(event);
  });

  it('terminates malformed payloads without stopping the consumer', async () => {
    const type = `bad${token}.user.registered`;
    const transport = await JetStreamTransport.connect({ url, stream, subjectPrefix });
    const received: string[] = [];
    const consumption = await transport.consume({ durable: `bad${token}`, types: [type], handler: async (e) => void received.push(e.id) });
    const js = jetstream(nc);
    await js.publish(subjectPrefix + type, new TextEncoder().encode('not json'));
    await js.publish(subjectPrefix + type, new TextEncoder().encode(JSON.stringify({ hello: 'world' })));
    // Ids PostgreSQL could not store (NUL) or index (too long) never reach a consumer.
    await js.publish(subjectPrefix + type, new TextEncoder().encode(JSON.stringify({ ...createEnvelope({ type, payload: {} }, { serviceName: 'test' }), id: 'a\u0000b' })));
    await js.publish(subjectPrefix + type, new TextEncoder().encode(JSON.stringify({ ...createEnvelope({ type, payload: {} }, { serviceName: 'test' }), id: 'x'.repeat(500) })));
    const good = createEnvelope({ type, payload: {} }, { serviceName: 'test' });
    await transport.publish(good);
    await vi.waitFor(() => expect(received).toEqual([good.id]), { timeout: 10_000, interval: 10 });
    await consumption.stop();
    await transport.close();
  });

  it('keeps queued events alive through a batch slower than ack_wait: no duplicates, no false dead letters', async () => {
    const type = `slow${token}.page.read`;
    const transport = await JetStreamTransport.connect({ url, stream, subjectPrefix, ackWaitMs: 300 });
    const published = Array.from({ length: 4 }, () => createEnvelope({ type, payload: {} }, { serviceName: 'test' }));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const seen: Array<[string, number]> = [];
    const deadLetters: string[] = [];
    const consumption = await transport.consume({
      durable: `slow${token}`,
      types: [type],
      maxBatch: 1,
      maxDeliver: 2,
      handleBatch: async (batch) => {
        seen.push([batch[0]!.event.id, batch[0]!.deliveryCount]);
        if (seen.length === 1) await gate;
        return { done: batch.length };
      },
      onDeadLetter: (e) => void deadLetters.push(e.id),
    });
    for (const event of published) await transport.publish(event);
    await vi.waitFor(() => expect(seen).toHaveLength(1), { timeout: 10_000, interval: 10 });
    // Several ack_waits pass while the first batch holds the rest in the queue (ack_wait is
    // about time, so this test has to let some pass).
    await new Promise((resolve) => setTimeout(resolve, 1500));
    release();
    await vi.waitFor(() => expect(seen.map(([id]) => id)).toEqual(published.map((e) => e.id)), { timeout: 10_000, interval: 10 });
    expect(seen.every(([, count]) => count === 1)).toBe(true);
    expect(deadLetters).toEqual([]);
    await consumption.stop();
    await transport.close();
  });

  it('reads the history to its end when the last sequence was deleted', async () => {
    const own = { url, stream: `${stream}_HIST`, subjectPrefix: `h${token}.events.` };
    const transport = await JetStreamTransport.connect(own);
    const events = Array.from({ length: 3 }, () => createEnvelope({ type: 'story.created', payload: {} }, { serviceName: 'test' }));
    for (const event of events) await transport.publish(event);
    await jsm.streams.deleteMessage(own.stream, 3);
    const read: string[] = [];
    for await (const delivery of transport.history(['>'])) read.push(delivery.event.id);
    expect(read).toEqual(events.slice(0, 2).map((e) => e.id));
    await transport.close();
    await jsm.streams.delete(own.stream);
  });

  it('re-creates a durable consumer deleted under it, and goes on delivering', async () => {
    const type = `gone${token}.story.created`;
    const transport = await JetStreamTransport.connect({ url, stream, subjectPrefix });
    const received: string[] = [];
    const consumption = await transport.consume({ durable: `gone${token}`, types: [type], backoffMs: () => 50, handler: async (e) => void received.push(e.id) });
    const [before, after] = [createEnvelope({ type, payload: {} }, { serviceName: 'test' }), createEnvelope({ type, payload: {} }, { serviceName: 'test' })];
    await transport.publish(before);
    await vi.waitFor(() => expect(received).toEqual([before.id]), { timeout: 10_000, interval: 10 });
    await jsm.consumers.delete(stream, `gone${token}`);
    await transport.publish(after);
    // Re-created from the start of the stream: `before` comes again (consumers' inboxes absorb that), then `after`.
    await vi.waitFor(() => expect(received).toContain(after.id), { timeout: 20_000, interval: 50 });
    await consumption.stop();
    await transport.close();
  });
});
