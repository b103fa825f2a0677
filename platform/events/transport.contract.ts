import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createEnvelope, type EventEnvelope } from './envelope.js';
import type { ConsumeOptions, Consumption, DeliveryInfo, EventTransport } from './transport.js';

/** One handler call, recorded before the handler decides to fail or succeed. */
interface Delivery {
  id: string;
  type: string;
  deliveryCount: number;
  sequence: number;
}

/** Conditions, not sleeps: JetStream needs a round trip or two, the in-process transport a tick. */
const eventually = <T>(check: () => T) => vi.waitFor(check, { timeout: 10_000, interval: 10 });

/**
 * The behaviour every EventTransport promises (see transport.ts). Each test uses its own event
 * types and durable names, so state kept by a server across tests never leaks between them.
 */
export function transportContract(name: string, make: () => Promise<EventTransport>): void {
  describe(`${name} transport contract`, () => {
    let transport: EventTransport;
    const running: Consumption[] = [];

    beforeAll(async () => {
      transport = await make();
    });
    afterEach(async () => {
      await Promise.all(running.splice(0).map((consumption) => consumption.stop()));
    });
    afterAll(async () => {
      await transport?.close();
    });

    /** A subject-safe token that makes a test's types and durables its own. */
    const uniqueToken = () => `t${randomBytes(5).toString('hex')}`;

    function event(type: string, payload: Record<string, unknown> = {}): EventEnvelope {
      return createEnvelope({ type, payload }, { serviceName: 'contract-test' });
    }

    /** Starts a consumer that records every delivery; `fail` decides whether the handler throws. */
    async function record(
      options: Omit<ConsumeOptions, 'handler'> & { fail?: (delivery: Delivery) => boolean },
    ): Promise<{ deliveries: Delivery[]; consumption: Consumption }> {
      const deliveries: Delivery[] = [];
      const { fail, ...rest } = options;
      const consumption = await transport.consume({
        backoffMs: () => 10,
        ...rest,
        handler: async (received: EventEnvelope, info: DeliveryInfo) => {
          const delivery = { id: received.id, type: received.type, ...info };
          deliveries.push(delivery);
          if (fail?.(delivery)) throw new Error(`handler failed on ${received.type}`);
        },
      });
      running.push(consumption);
      return { deliveries, consumption };
    }

    const ids = (deliveries: Delivery[]) => deliveries.map((delivery) => delivery.id);

    it('delivers a published event, intact, to a consumer of its type', async () => {
      const ns = uniqueToken();
      const published = event(`${ns}.story.created`, { storyId: 's1', title: 'A tale' });
      const received: EventEnvelope[] = [];
      running.push(
        await transport.consume({ durable: `d${ns}`, types: [published.type], handler: async (e) => void received.push(e) }),
      );
      await transport.publish(published);
      await eventually(() => expect(received).toEqual([published]));
    });

    it('matches types with NATS wildcards: * is one token, > is the rest', async () => {
      const ns = uniqueToken();
      const users = await record({ durable: `u${ns}`, types: [`${ns}.user.*`] });
      const stories = await record({ durable: `s${ns}`, types: [`${ns}.story.>`] });
      const registered = event(`${ns}.user.registered`);
      const created = event(`${ns}.story.created`);
      const completed = event(`${ns}.story.analysis.completed`);
      const login = event(`${ns}.user.login`);
      for (const e of [registered, created, completed, login]) await transport.publish(e);
      // Delivery is in stream order, so the last matching event arriving proves nothing else will.
      await eventually(() => expect(ids(users.deliveries)).toEqual([registered.id, login.id]));
      await eventually(() => expect(ids(stories.deliveries)).toEqual([created.id, completed.id]));
    });

    it('delivers in stream order with increasing sequences, one handler at a time', async () => {
      const ns = uniqueToken();
      const published = Array.from({ length: 5 }, (_, i) => event(`${ns}.chapter.written`, { i }));
      let busy = 0;
      let overlapped = false;
      const seen: Array<{ id: string; sequence: number }> = [];
      running.push(
        await transport.consume({
          durable: `d${ns}`,
          types: [`${ns}.chapter.written`],
          handler: async (e, info) => {
            overlapped ||= busy++ > 0;
            await new Promise((resolve) => setImmediate(resolve));
            seen.push({ id: e.id, sequence: info.sequence });
            busy--;
          },
        }),
      );
      for (const e of published) await transport.publish(e);
      await eventually(() => expect(seen.map((s) => s.id)).toEqual(published.map((e) => e.id)));
      const sequences = seen.map((s) => s.sequence);
      expect(sequences).toEqual([...sequences].sort((a, b) => a - b));
      expect(new Set(sequences).size).toBe(sequences.length);
      expect(overlapped).toBe(false);
    });

    it('resumes a durable consumer after its last acknowledged event', async () => {
      const ns = uniqueToken();
      const type = `${ns}.user.registered`;
      const [first, second, third, fourth] = [event(type), event(type), event(type), event(type)];
      await transport.publish(first!);
      await transport.publish(second!);
      const before = await record({ durable: `d${ns}`, types: [type] });
      await eventually(() => expect(ids(before.deliveries)).toEqual([first!.id, second!.id]));
      await before.consumption.stop();

      await transport.publish(third!);
      await transport.publish(fourth!);
      const after = await record({ durable: `d${ns}`, types: [type] });
      await eventually(() => expect(ids(after.deliveries)).toEqual([third!.id, fourth!.id]));
      expect(ids(before.deliveries)).toEqual([first!.id, second!.id]);
    });

    it('redelivers an event whose handler failed, before any later event', async () => {
      const ns = uniqueToken();
      const [failing, next] = [event(`${ns}.voice.cloned`), event(`${ns}.voice.cloned`)];
      const consumer = await record({
        durable: `d${ns}`,
        types: [`${ns}.voice.*`],
        fail: (d) => d.id === failing.id && d.deliveryCount === 1,
      });
      await transport.publish(failing);
      await transport.publish(next);
      await eventually(() =>
        expect(consumer.deliveries.map((d) => [d.id, d.deliveryCount])).toEqual([
          [failing.id, 1],
          [failing.id, 2],
          [next.id, 1],
        ]),
      );
      expect(consumer.deliveries[1]?.sequence).toBe(consumer.deliveries[0]?.sequence);
    });

    it('dead-letters an event after maxDeliver failed attempts and moves on', async () => {
      const ns = uniqueToken();
      const [poison, next] = [event(`${ns}.video.requested`), event(`${ns}.video.requested`)];
      const deadLetters: Array<{ id: string; error: unknown }> = [];
      const consumer = await record({
        durable: `d${ns}`,
        types: [`${ns}.video.requested`],
        maxDeliver: 3,
        fail: (d) => d.id === poison.id,
        onDeadLetter: (e, error) => void deadLetters.push({ id: e.id, error }),
      });
      await transport.publish(poison);
      await transport.publish(next);
      await eventually(() =>
        expect(consumer.deliveries.map((d) => [d.id, d.deliveryCount])).toEqual([
          [poison.id, 1],
          [poison.id, 2],
          [poison.id, 3],
          [next.id, 1],
        ]),
      );
      expect(deadLetters).toHaveLength(1);
      expect(deadLetters[0]?.id).toBe(poison.id);
      expect(String(deadLetters[0]?.error)).toContain('handler failed');
    });

    it('delivers an event published twice with the same id once', async () => {
      const ns = uniqueToken();
      const [original, sentinel] = [event(`${ns}.invoice.paid`), event(`${ns}.invoice.paid`)];
      const consumer = await record({ durable: `d${ns}`, types: [`${ns}.invoice.paid`] });
      await transport.publish(original);
      await transport.publish({ ...original });
      await transport.publish(sentinel);
      // The sentinel comes after the duplicate in the stream: once it arrives, a duplicate would have too.
      await eventually(() => expect(ids(consumer.deliveries)).toEqual([original.id, sentinel.id]));
    });

    it('hands waiting events over in batches of at most maxBatch, in stream order', async () => {
      const ns = uniqueToken();
      const type = `${ns}.page.turned`;
      const published = Array.from({ length: 10 }, (_, i) => event(type, { i }));
      for (const e of published) await transport.publish(e);
      const batches: string[][] = [];
      running.push(
        await transport.consume({
          durable: `d${ns}`,
          types: [type],
          maxBatch: 4,
          handleBatch: async (batch) => {
            batches.push(batch.map((delivery) => delivery.event.id));
            return { done: batch.length };
          },
        }),
      );
      await eventually(() => expect(batches.flat()).toEqual(published.map((e) => e.id)));
      expect(Math.max(...batches.map((batch) => batch.length))).toBeLessThanOrEqual(4);
      // Ten events were waiting: they cannot all have come one at a time.
      expect(batches.length).toBeLessThan(10);
    });

    it('retries the failed event of a partly done batch first, then offers the rest again', async () => {
      const ns = uniqueToken();
      const type = `${ns}.scene.set`;
      const [a, b, c] = [event(type), event(type), event(type)];
      const offers: Array<Array<[string, number]>> = [];
      running.push(
        await transport.consume({
          durable: `d${ns}`,
          types: [type],
          maxBatch: 3,
          backoffMs: () => 10,
          handleBatch: async (batch) => {
            offers.push(batch.map((delivery) => [delivery.event.id, delivery.deliveryCount]));
            // b fails on its first delivery: a is done, b and c are not.
            const failing = batch.findIndex((delivery) => delivery.event.id === b!.id && delivery.deliveryCount === 1);
            return failing === -1 ? { done: batch.length } : { done: failing, error: new Error('b failed') };
          },
        }),
      );
      for (const e of [a!, b!, c!]) await transport.publish(e);
      await eventually(() => expect(offers.flat().filter(([, count]) => count > 1)).toHaveLength(1));
      const handled = offers.flatMap((offer) => {
        const failing = offer.findIndex(([id, count]) => id === b!.id && count === 1);
        return failing === -1 ? offer : offer.slice(0, failing);
      });
      await eventually(() => expect(offers.flat().at(-1)?.[0]).toBe(c!.id));
      expect(handled.map(([id]) => id)).toEqual([a!.id, b!.id, c!.id]);
      expect(handled.find(([id]) => id === b!.id)?.[1]).toBe(2);
    });

    it('keeps trying to record a dead letter until it is recorded, then moves on', async () => {
      const ns = uniqueToken();
      const type = `${ns}.clip.failed`;
      const [poison, next] = [event(type), event(type)];
      let recordAttempts = 0;
      const recorded: string[] = [];
      const consumer = await record({
        durable: `d${ns}`,
        types: [type],
        maxDeliver: 2,
        fail: (d) => d.id === poison.id,
        onDeadLetter: (e) => {
          if (++recordAttempts < 3) throw new Error('dead-letter store down');
          recorded.push(e.id);
        },
      });
      await transport.publish(poison);
      await transport.publish(next);
      await eventually(() => expect(ids(consumer.deliveries)).toEqual([poison.id, poison.id, next.id]));
      expect(recorded).toEqual([poison.id]);
      expect(recordAttempts).toBe(3);
    });

    it('reports each durable consumer and reads the history back', async () => {
      const ns = uniqueToken();
      const type = `${ns}.status.checked`;
      const published = [event(type), event(type), event(`${ns}.other.thing`)];
      for (const e of published) await transport.publish(e);
      const consumer = await record({ durable: `d${ns}`, types: [type] });
      await eventually(() => expect(consumer.deliveries).toHaveLength(2));
      await eventually(async () => {
        const status = (await transport.consumerStatus()).find((candidate) => candidate.name === `d${ns}`);
        expect(status).toMatchObject({ pending: expect.any(Number), inFlight: 0, redelivered: 0 });
      });
      const history: string[] = [];
      for await (const delivery of transport.history([`${ns}.status.*`])) history.push(delivery.event.id);
      expect(history).toEqual(published.slice(0, 2).map((e) => e.id));
    });

    it('delivers any JSON payload, not only objects', async () => {
      const ns = uniqueToken();
      const type = `${ns}.odd.payload`;
      const published = [event(type), { ...event(type), payload: 'a bare string' }, { ...event(type), payload: null }, { ...event(type), payload: [1, 2] }];
      const consumer = await record({ durable: `d${ns}`, types: [type] });
      for (const e of published) await transport.publish(e as EventEnvelope);
      await eventually(() => expect(ids(consumer.deliveries)).toEqual(published.map((e) => e.id)));
    });

    it('retries a systemic failure without spending the event\'s attempts', async () => {
      const ns = uniqueToken();
      const type = `${ns}.db.down`;
      const offers: number[] = [];
      const deadLetters: string[] = [];
      running.push(
        await transport.consume({
          durable: `d${ns}`,
          types: [type],
          maxDeliver: 2,
          backoffMs: () => 5,
          handleBatch: async (batch) => {
            offers.push(batch[0]!.deliveryCount);
            // The "database" is down for the first four tries: more than maxDeliver.
            return offers.length <= 4 ? { done: 0, error: new Error('connection refused'), systemic: true } : { done: batch.length };
          },
          onDeadLetter: (e) => void deadLetters.push(e.id),
        }),
      );
      await transport.publish(event(type));
      await eventually(() => expect(offers).toHaveLength(5));
      expect(offers).toEqual([1, 1, 1, 1, 1]);
      expect(deadLetters).toEqual([]);
    });

    it('stops at once even when a retry backoff begins after stop()', async () => {
      const ns = uniqueToken();
      const type = `${ns}.slow.failure`;
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let calls = 0;
      const consumption = await transport.consume({
        durable: `d${ns}`,
        types: [type],
        // A backoff no test would wait out.
        backoffMs: () => 10 * 60_000,
        handler: async () => {
          calls++;
          await gate;
          throw new Error('fails after stop() was called');
        },
      });
      await transport.publish(event(type));
      await eventually(() => expect(calls).toBe(1));
      const stopped = consumption.stop();
      release();
      await stopped;
      expect(calls).toBe(1);
    });

    it('publishes without waiting for a busy handler, and stop() waits for it', async () => {
      const ns = uniqueToken();
      const type = `${ns}.job.progressed`;
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let started = 0;
      let finished = 0;
      const consumption = await transport.consume({
        durable: `d${ns}`,
        types: [type],
        handler: async () => {
          started++;
          await gate;
          // A few macrotasks of work after release: a stop() that did not wait would resolve first.
          for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
          finished++;
        },
      });
      await transport.publish(event(type));
      await eventually(() => expect(started).toBe(1));
      await transport.publish(event(type));
      const stopped = consumption.stop();
      release();
      await stopped;
      expect(finished).toBe(started);
    });
  });
}
