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
import { connect, nanos, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { EVENT_SUBJECT_PREFIX, subjectMatches, type EventEnvelope } from './envelope.js';
import { defaultBackoffMs, type ConsumeOptions, type Consumption, type EventTransport } from './transport.js';

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
    const nc = await connect({ servers: options.url, name: `storyloom-events-${stream}`, maxReconnectAttempts: -1 });
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
    await this.js.publish(this.settings.prefix + event.type, encoder.encode(JSON.stringify(event)), { msgID: event.id });
  }

  async consume(options: ConsumeOptions): Promise<Consumption> {
    const { stream, prefix } = this.settings;
    const maxDeliver = options.maxDeliver ?? 5;
    await ensureConsumer(this.jsm, stream, {
      durable_name: options.durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      // One delivery more than the handler gets, so an attempt that never reported back (a
      // crash, an ack_wait expiry) still ends in onDeadLetter instead of a silent skip.
      max_deliver: maxDeliver + 1,
      ack_wait: nanos(this.settings.ackWaitMs),
      // One unacknowledged message at a time: a message waiting out its nak backoff holds back
      // the ones after it, which keeps stream order across redeliveries.
      max_ack_pending: 1,
      ...filterConfig(prefix, options.types, this.nc.info?.version),
    });
    const consumer = await this.js.consumers.get(stream, options.durable);
    const messages = await consumer.consume();
    const state = { stopping: false };
    const loop = this.run(messages, options, maxDeliver, state);
    const consumption: Consumption = {
      stop: async () => {
        state.stopping = true;
        this.consumptions.delete(consumption);
        await messages.close();
        await loop;
      },
    };
    this.consumptions.add(consumption);
    return consumption;
  }

  async close(): Promise<void> {
    await Promise.all([...this.consumptions].map((consumption) => consumption.stop()));
    if (!this.nc.isClosed()) await this.nc.drain();
  }

  private async run(messages: ConsumerMessages, options: ConsumeOptions, maxDeliver: number, state: { stopping: boolean }): Promise<void> {
    this.logStatus(messages, options.durable).catch(() => undefined);
    try {
      for await (const msg of messages) {
        // Messages already buffered when stop() was called go back at once rather than waiting
        // out ack_wait, so the next consume() of this durable gets them without delay.
        if (state.stopping) msg.nak();
        else await this.handle(msg, options, maxDeliver);
      }
    } catch (error) {
      this.settings.logger?.error({ err: error, durable: options.durable }, 'event consumer stopped on error');
    }
  }

  private async handle(msg: JsMsg, options: ConsumeOptions, maxDeliver: number): Promise<void> {
    const { logger } = this.settings;
    const event = parseEnvelope(msg.data);
    if (!event) {
      logger?.error({ subject: msg.subject, sequence: msg.seq, durable: options.durable }, 'malformed event payload; terminated');
      // No term reason: servers before 2.10.4 do not parse '+TERM <reason>' and keep the message pending.
      msg.term();
      return;
    }
    // Needed where the server cannot filter by type itself (see filterConfig).
    if (!options.types.some((pattern) => subjectMatches(pattern, event.type))) {
      msg.ack();
      return;
    }
    const deliveryCount = msg.info.deliveryCount;
    if (deliveryCount > maxDeliver) {
      // The extra delivery the consumer allows (see consume()): the last attempt never
      // reported back, e.g. the process died mid-handler, so dead-letter without retrying.
      await this.deadLetter(msg, event, options, new Error(`no successful handling in ${maxDeliver} deliveries`));
      return;
    }
    // A handler slower than ack_wait must not have its event redelivered behind its back.
    const keepAlive = setInterval(() => msg.working(), Math.max(100, this.settings.ackWaitMs / 3));
    keepAlive.unref();
    try {
      await options.handler(event, { deliveryCount, sequence: msg.seq });
    } catch (error) {
      if (deliveryCount < maxDeliver) {
        logger?.warn({ err: error, eventId: event.id, type: event.type, deliveryCount }, 'event handler failed; will redeliver');
        msg.nak((options.backoffMs ?? defaultBackoffMs)(deliveryCount));
      } else {
        await this.deadLetter(msg, event, options, error);
      }
      return;
    } finally {
      clearInterval(keepAlive);
    }
    // Waiting for the server to confirm the ack means stop() returns with the consumer's
    // position stored, so the next consume() with this durable never sees the event again.
    await msg.ackAck().catch((error: unknown) => logger?.warn({ err: error, eventId: event.id }, 'ack not confirmed; event may be redelivered'));
  }

  private async deadLetter(msg: JsMsg, event: EventEnvelope, options: ConsumeOptions, error: unknown): Promise<void> {
    const { logger } = this.settings;
    try {
      await options.onDeadLetter?.(event, error);
    } catch (deadLetterError) {
      logger?.error({ err: deadLetterError, eventId: event.id }, 'onDeadLetter failed');
    }
    logger?.error({ err: error, eventId: event.id, type: event.type, durable: options.durable }, 'event dead-lettered after max deliveries');
    msg.term();
  }

  private async logStatus(messages: ConsumerMessages, durable: string): Promise<void> {
    const routine = new Set(['heartbeat', 'next', 'debug', 'discard', 'flow_control']);
    for await (const status of messages.status()) {
      if (!routine.has(status.type)) this.settings.logger?.warn({ durable, status }, 'event consumer status');
    }
  }
}

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

function parseEnvelope(data: Uint8Array): EventEnvelope | null {
  try {
    const value: unknown = JSON.parse(decoder.decode(data));
    if (typeof value !== 'object' || value === null) return null;
    const candidate = value as Partial<EventEnvelope>;
    const ok = typeof candidate.id === 'string' && typeof candidate.type === 'string' && typeof candidate.payload === 'object' && candidate.payload !== null;
    return ok ? (value as EventEnvelope) : null;
  } catch {
    return null;
  }
}
