import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { InProcessTransport } from './in-process.js';
import { JetStreamTransport } from './jetstream.js';
import type { EventTransport } from './transport.js';

/** JetStream when NATS_URL is set (stream EVENTS_STREAM on EVENTS_SUBJECT_PREFIX), else in process. */
export async function eventTransportFor(config: Config, logger: Logger): Promise<EventTransport> {
  if (!config.NATS_URL) return new InProcessTransport({ logger });
  return JetStreamTransport.connect({ url: config.NATS_URL, stream: config.EVENTS_STREAM, subjectPrefix: config.EVENTS_SUBJECT_PREFIX, logger });
}
