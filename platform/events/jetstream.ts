import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  StorageType,
  type ConsumerConfig,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { connect, headers, nanos, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { EVENT_SUBJECT_PREFIX, subjectMatches, type EventEnvelope } from './envelope.js';
import {
  batchHandlerOf,
  defaultBackoffMs,
  type BatchResult,
  type ConsumeOptions,
  type ConsumerStatus,
  type Consumption,
  type Delivery,
  type EventTransport,
} from './transport.js';

export interface JetStreamTransportOptions {
  url: string;
  /** Stream name. Default 'EVENTS'. */
  stream?: string;
  /**
   * Prefix of every event subject, ending with '.'. Default 'events.' (subjects `events.<type>`).
   * JetStream forbids two streams with overlapping subjects on one server, so tests that each
   * own a stream give each its own prefix.
   */
  subjectPrefix?: string;
  /** JetStream's duplicate_window: how long a message id is remembered. Default 2 minutes. */
  duplicateWindowMs?: number;
  /** How long the server waits for an ack before redelivering (e.g. the process died). Default 30 s. */
  ackWaitMs?: number;
  logger?: Logger;
}

interface Settings {
  stream: string;
  prefix: string;
  ackWaitMs: number;
  logger: Logger | undefined;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The production transport: one JetStream stream, one durable pull consumer per durable name. */
export class JetStreamTransport implements EventTransport {
  readonly kind = 'NATS' as const;
  private readonly js: JetStreamClient;
  private readonly consumptions = new Set<Consumption>();

  private constructor(
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly settings: Settings,
  ) {
    this.js = jetstream(nc);
  }

  static async connect(options: JetStreamTransportOptions): Promise<JetStreamTransport> {
    const prefix = options.subjectPrefix ?? EVENT_SUBJECT_PREFIX;
    if (!prefix.endsWith('.')) throw new Error(`subjectPrefix must end with '.', got '${prefix}'`);
    const stream = options.stream ?? 'EVENTS';
    // Reconnect forever: a long-running service outlives a NATS restart; the default gives up after 10 tries.
    // No async stack traces: nats.js would build an Error for every publish's request (a third
    // of a publish's CPU, bench/events.ts), only to make a timeout's stack longer.
    const nc = await connect({ servers: options.url, name: `storyloom-events-${stream}`, maxReconnectAttempts: -1, noAsyncTraces: true });
    try {
      const jsm = await jetstreamManager(nc);
      await ensureStream(jsm, stream, [prefix + '>'], options.duplicateWindowMs ?? 2 * 60_000);
      return new JetStreamTransport(nc, jsm, { stream, prefix, ackWaitMs: options.ackWaitMs ?? 30_000, logger: options.logger });
    } catch (error) {
      await nc.close();
      throw error;
    }
  }

  async publish(event: EventEnvelope): Promise<void> {
    // msgID is what makes a re-published outbox row a no-op within the duplicate window.
    // The trace context also rides as message headers, for whoever inspects the stream.
    const traceHeaders = event.trace ? headers() : undefined;
    for (const [key, value] of Object.entries(event.trace ?? {})) traceHeaders!.set(key, value);
    await this.js.publish(this.settings.prefix + event.type, encoder.encode(JSON.stringify(event)), { msgID: event.id, headers: traceHeaders });
  }

  async consume(options: ConsumeOptions): Promise<Consumption> {
    const { stream, prefix } = this.settings;
    const { handle, maxBatch } = batchHandlerOf(options);
    const maxDeliver = options.maxDeliver ?? 5;
    const config = {
      durable_name: options.durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      // The server never gives up on a message by itself (that would drop it silently): the
      // client counts attempts and dead-letters (see ConsumerRun).
      max_deliver: -1,
      ack_wait: nanos(this.settings.ackWaitMs),
      // Room for the batch being handled and the next one, so the server is never idle while
      // the handler works. Redeliveries after a failure are held back here, in the client,
      // ahead of the later events, which keeps stream order.
      max_ack_pending: maxBatch * 2,
      ...filterConfig(prefix, options.types, this.nc.info?.version),
    };
    await ensureConsumer(this.jsm, stream, config);
    const open = async () => {
      const consumer = await this.js.consumers.get(stream, options.durable);
      // Ends, rather than waiting for them to come back, if the consumer or the stream is deleted.
      const messages = await consumer.consume({ max_messages: Math.max(maxBatch * 2, 16), abort_on_missing_resource: true });
      return new ConsumerRun(messages, options, { handle, maxBatch, maxDeliver }, this.settings);
    };
    let run = await open();
    const state: { stopping: boolean; wake: (() => void) | null } = { stopping: false, wake: null };
    const loop = (async () => {
      for (;;) {
        await run.run();
        if (state.stopping) return;
        // The messages ended without stop(): someone deleted the durable (or its stream). It
        // is created again, from the start of the stream; consumers' inboxes make what they
        // see again a no-op.
        for (let attempt = 1; !state.stopping; attempt++) {
          this.settings.logger?.warn({ durable: options.durable, attempt }, 'event consumer lost its server-side consumer; creating it again');
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, defaultBackoffMs(attempt));
            state.wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          if (state.stopping) return;
          try {
            await ensureConsumer(this.jsm, stream, config);
            run = await open();
            // stop() came while this was being opened: it stopped the old run, not this one.
            if (state.stopping) await run.stop();
            break;
          } catch (error) {
            this.settings.logger?.error({ err: error, durable: options.durable }, 'could not create the event consumer again; will retry');
          }
        }
      }
    })();
    const consumption: Consumption = {
      stop: async () => {
        this.consumptions.delete(consumption);
        state.stopping = true;
        state.wake?.();
        await run.stop();
        await loop;
      },
    };
    this.consumptions.add(consumption);
    return consumption;
  }

  async ping(): Promise<void> {
    // A round trip to the server; while reconnecting it waits, and the probe's deadline says no.
    await this.nc.flush();
  }

  async consumerStatus(): Promise<ConsumerStatus[]> {
    const statuses: ConsumerStatus[] = [];
    for await (const info of this.jsm.consumers.list(this.settings.stream)) {
      if (!info.config.durable_name) continue;
      // Sent as an RFC 3339 time by servers that have it (2.10+), though typed as nanos.
      const lastActive: unknown = info.ack_floor.last_active;
      statuses.push({
        name: info.name,
        // On 2.9 the server filters on the whole prefix (see filterConfig), so this counts
        // events of other types too.
        pending: info.num_pending,
        inFlight: info.num_ack_pending,
        redelivered: info.num_redelivered,
        lastActiveAt: typeof lastActive === 'string' && !lastActive.startsWith('0001') ? new Date(lastActive) : null,
      });
    }
    return statuses.sort((a, b) => a.name.localeCompare(b.name));
  }

  async *history(types: string[]): AsyncIterable<Delivery> {
    const { stream, prefix } = this.settings;
    const { state } = await this.jsm.streams.info(stream);
    if (state.messages === 0) return;
    const last = state.last_seq;
    // An ordered consumer: ephemeral, flow-controlled, and it resets itself on a gap. It takes
    // the whole prefix (types are filtered here), so the last sequence is always reached.
    const ordered = await this.js.consumers.get(stream, { filter_subjects: `${prefix}>`, deliver_policy: DeliverPolicy.All });
    const messages = await ordered.consume();
    try {
      for await (const msg of messages) {
        const event = parseEnvelope(msg.data);
        if (event && types.some((pattern) => subjectMatches(pattern, event.type))) {
          yield { event, sequence: msg.seq, deliveryCount: 1 };
        }
        // pending 0: nothing after this one, even if the last sequence was deleted.
        if (msg.seq >= last || msg.info.pending === 0) break;
      }
    } finally {
      await messages.close();
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.consumptions].map((consumption) => consumption.stop()));
    if (!this.nc.isClosed()) await this.nc.drain();
  }
}

interface Pending {
  msg: JsMsg;
  event: EventEnvelope;
  /** Attempts so far in this process that failed, plus one: what the handler is told. */
  deliveryCount: number;
}

/**
 * One consume() of a durable: a pump moves messages from the server into a queue, and the loop
 * hands whatever is queued (up to maxBatch) to the handler, acknowledges what it finished, and
 * holds a failed event (and those behind it) through its backoff before offering it again.
 *
 * Attempts are counted here, not by the server: a graceful stop hands messages back (nak),
 * which the server counts as deliveries. Only a message the server has delivered far more
 * often than maxDeliver (the process keeps dying on it) is dead-lettered without an attempt.
 */
class ConsumerRun {
  private readonly queue: JsMsg[] = [];
  /** Messages held (queued or being handled), by stream sequence: kept alive, never held twice. */
  private readonly held = new Map<number, JsMsg>();
  private stopping = false;
  private ended = false;
  /** Set while the loop waits for messages or a backoff; resolves the wait early. */
  private wake: (() => void) | null = null;

  constructor(
    private readonly messages: ConsumerMessages,
    private readonly options: ConsumeOptions,
    private readonly batching: { handle: (batch: Delivery[]) => Promise<BatchResult>; maxBatch: number; maxDeliver: number },
    private readonly settings: Settings,
  ) {}

  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.messages.close();
  }

  async run(): Promise<void> {
    const pump = this.pump();
    this.logStatus().catch(() => undefined);
    // Everything held waits on this process: tell the server so, or it redelivers behind our back.
    const keepAlive = setInterval(() => this.held.forEach((msg) => msg.working()), Math.max(100, this.settings.ackWaitMs / 3));
    keepAlive.unref();
    try {
      while (!this.stopping) {
        if (!this.queue.length) {
          if (this.ended) break;
          await this.pause(null);
          continue;
        }
        await this.handleBatch(this.queue.splice(0, this.batching.maxBatch));
      }
      await pump;
    } finally {
      clearInterval(keepAlive);
      // Handed back at once rather than left to ack_wait, so the next consume() of this
      // durable gets them without delay (after the pump ended: nothing arrives later).
      for (const msg of this.queue.splice(0)) this.release(msg).nak();
    }
  }

  private async pump(): Promise<void> {
    try {
      for await (const msg of this.messages) {
        // A redelivery of a message still held here (the server's ack_wait ran out): the held
        // copy is the one being worked on.
        if (this.held.has(msg.seq)) continue;
        this.held.set(msg.seq, msg);
        this.queue.push(msg);
        this.wake?.();
      }
    } catch (error) {
      this.settings.logger?.error({ err: error, durable: this.options.durable }, 'event consumer messages ended on error');
    } finally {
      this.ended = true;
      this.wake?.();
    }
  }

  private release(msg: JsMsg): JsMsg {
    this.held.delete(msg.seq);
    return msg;
  }

  private async handleBatch(msgs: JsMsg[]): Promise<void> {
    const { maxDeliver, handle } = this.batching;
    const backoffMs = this.options.backoffMs ?? defaultBackoffMs;
    let pending = msgs.flatMap((msg) => this.admit(msg));
    let outages = 0;
    while (pending.length) {
      if (this.stopping) {
        pending.forEach(({ msg }) => this.release(msg).nak());
        return;
      }
      const head = pending[0]!;
      if (head.msg.info.deliveryCount > maxDeliver * CRASH_FACTOR) {
        // Delivered this often without ever being finished: the process handling it dies.
        if (await this.deadLetter(head, new Error(`delivered ${head.msg.info.deliveryCount} times without being handled (the consumer keeps stopping on it)`))) pending = pending.slice(1);
        continue;
      }
      const { done, error, systemic } = await handle(pending.map(({ msg, event, deliveryCount }) => ({ event, deliveryCount, sequence: msg.seq })));
      await this.acknowledge(pending.slice(0, done));
      pending = pending.slice(done);
      if (!pending.length) return;

      if (systemic) {
        // Not the event's fault (the database is down): wait and retry, spending no attempt.
        this.settings.logger?.warn({ err: error, durable: this.options.durable }, 'event consumer cannot handle events now; will retry');
        await this.pause(backoffMs(++outages));
        continue;
      }
      outages = 0;
      const failed = pending[0]!;
      if (failed.deliveryCount >= maxDeliver) {
        if (await this.deadLetter(failed, error)) pending = pending.slice(1);
        continue;
      }
      this.settings.logger?.warn({ err: error, eventId: failed.event.id, type: failed.event.type, deliveryCount: failed.deliveryCount }, 'event handler failed; will redeliver');
      await this.pause(backoffMs(failed.deliveryCount));
      failed.deliveryCount++;
    }
  }

  /** Malformed payloads are terminated and other types acknowledged here; the rest go to the handler. */
  private admit(msg: JsMsg): Pending[] {
    const event = parseEnvelope(msg.data);
    if (!event) {
      this.settings.logger?.error({ subject: msg.subject, sequence: msg.seq, durable: this.options.durable }, 'malformed event payload; terminated');
      // No term reason: servers before 2.10.4 do not parse '+TERM <reason>' and keep the message pending.
      this.release(msg).term();
      return [];
    }
    // Needed where the server cannot filter by type itself (see filterConfig).
    if (!this.options.types.some((pattern) => subjectMatches(pattern, event.type))) {
      this.release(msg).ack();
      return [];
    }
    return [{ msg, event, deliveryCount: 1 }];
  }

  /**
   * Acks in order and waits for the server to confirm the last one: acks on one connection are
   * processed in order, so stop() returns with the consumer's position stored and the next
   * consume() of this durable never sees these events again.
   */
  private async acknowledge(done: Pending[]): Promise<void> {
    if (!done.length) return;
    done.slice(0, -1).forEach(({ msg }) => this.release(msg).ack());
    const last = done.at(-1)!;
    await this.release(last.msg)
      .ackAck()
      .catch((error: unknown) => this.settings.logger?.warn({ err: error, eventId: last.event.id }, 'ack not confirmed; events may be redelivered'));
  }

  /**
   * Records the dead letter, retrying with backoff until that works (an event is never dropped
   * without a trace), then terminates the message. False if stopped first.
   */
  private async deadLetter(entry: Pending, error: unknown): Promise<boolean> {
    const { logger } = this.settings;
    for (let attempt = 1; !this.stopping; attempt++) {
      try {
        await this.options.onDeadLetter?.(entry.event, error);
        logger?.error({ err: error, eventId: entry.event.id, type: entry.event.type, durable: this.options.durable }, 'event dead-lettered after max deliveries');
        this.release(entry.msg).term();
        return true;
      } catch (deadLetterError) {
        logger?.error({ err: deadLetterError, eventId: entry.event.id }, 'could not record a dead letter; will retry');
        await this.pause((this.options.backoffMs ?? defaultBackoffMs)(attempt));
      }
    }
    return false;
  }

  /** Waits for a message (ms null) or the backoff; stop() ends either early, even one begun after it. */
  private pause(ms: number | null): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = ms === null ? undefined : setTimeout(finish, ms);
      timer?.unref();
      function finish() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        // A message arriving must not cut a backoff short; stopping must.
        if (ms === null || this.stopping) {
          this.wake = null;
          finish();
        }
      };
    });
  }

  private async logStatus(): Promise<void> {
    const routine = new Set(['heartbeat', 'next', 'debug', 'discard', 'flow_control']);
    for await (const status of this.messages.status()) {
      if (!routine.has(status.type)) this.settings.logger?.warn({ durable: this.options.durable, status }, 'event consumer status');
    }
  }
}

/** How many times maxDeliver the server may deliver a message before it counts as a crash loop. */
const CRASH_FACTOR = 3;

async function ensureStream(jsm: JetStreamManager, name: string, subjects: string[], duplicateWindowMs: number) {
  const duplicateWindow = nanos(duplicateWindowMs);
  const existing = await jsm.streams.info(name).catch((error: unknown) => {
    if (isApiError(error, JetStreamApiCodes.StreamNotFound)) return null;
    throw error;
  });
  if (!existing) {
    await jsm.streams.add({ name, subjects, storage: StorageType.File, duplicate_window: duplicateWindow });
    return;
  }
  const sameSubjects = existing.config.subjects.join(' ') === subjects.join(' ');
  if (!sameSubjects || existing.config.duplicate_window !== duplicateWindow) {
    // Storage cannot be changed on a live stream; subjects and the window can.
    await jsm.streams.update(name, { ...existing.config, subjects, duplicate_window: duplicateWindow });
  }
}

async function ensureConsumer(jsm: JetStreamManager, stream: string, config: Partial<ConsumerConfig> & { durable_name: string }) {
  const exists = await jsm.consumers.info(stream, config.durable_name).then(
    () => true,
    (error: unknown) => {
      if (isApiError(error, JetStreamApiCodes.ConsumerNotFound)) return false;
      throw error;
    },
  );
  // add() sends action "create", which newer servers refuse for an existing consumer whose
  // config differs, so an existing durable goes through update() (only changeable fields).
  if (!exists) {
    await jsm.consumers.add(stream, config);
    return;
  }
  const { durable_name: _name, ack_policy: _ack, deliver_policy: _deliver, ...changeable } = config;
  await jsm.consumers.update(stream, config.durable_name, changeable);
}

/**
 * nats-server 2.10+ filters on several subjects (filter_subjects) and applies a changed filter
 * to an existing durable. 2.9 has neither: with it, changing filter_subject of a durable made the
 * consumer skip its pending messages (seen with 2.9.10). So on 2.9 every consumer takes the
 * whole prefix, its filter never changes, and handle() skips other types client-side.
 * Both keys are always present (one undefined, dropped by JSON) so an update replaces the other.
 */
function filterConfig(prefix: string, types: string[], serverVersion: string | undefined): Pick<ConsumerConfig, 'filter_subject' | 'filter_subjects'> {
  if (supportsMultipleFilters(serverVersion)) return { filter_subject: undefined, filter_subjects: types.map((type) => prefix + type) };
  return { filter_subject: `${prefix}>`, filter_subjects: undefined };
}

function supportsMultipleFilters(version: string | undefined): boolean {
  const [major = 0, minor = 0] = (version ?? '0.0').split('.').map((part) => Number.parseInt(part, 10));
  return major > 2 || (major === 2 && minor >= 10);
}

function isApiError(error: unknown, code: number): boolean {
  return error instanceof JetStreamApiError && error.code === code;
}

const MAX_ID_LENGTH = 200;

/**
 * The envelope in a message, or null if it is not one: what a consumer cannot even record as a
 * dead letter (PostgreSQL refuses NUL in text and jsonb, and an id must fit an index) is refused
 * here. The payload may be any JSON value.
 */
function parseEnvelope(data: Uint8Array): EventEnvelope | null {
  const text = decoder.decode(data);
  if (text.includes('\\u0000')) return null;
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
    const candidate = value as Partial<EventEnvelope>;
    const ok =
      typeof candidate.id === 'string' &&
      candidate.id.length > 0 &&
      candidate.id.length <= MAX_ID_LENGTH &&
      typeof candidate.type === 'string' &&
      candidate.type.length > 0 &&
      'payload' in candidate;
    return ok ? (value as EventEnvelope) : null;
  } catch {
    return null;
  }
}
