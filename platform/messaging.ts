import type { Config } from './config.js';
import { InProcessJobQueue } from './jobs/in-process.js';
import { JetStreamJobQueue } from './jobs/jetstream.js';
import type { JobQueue } from './jobs/queue.js';
import { InProcessLiveBus } from './live/in-process.js';
import type { LiveBus } from './live/live.js';
import { NatsLiveBus } from './live/nats.js';
import type { Logger } from './log.js';

/** Live updates over core NATS when NATS_URL is set, else in process (like the events). */
export async function liveBusFor(config: Config, logger: Logger): Promise<LiveBus> {
  if (!config.NATS_URL) return new InProcessLiveBus();
  return NatsLiveBus.connect({ url: config.NATS_URL, prefix: config.LIVE_SUBJECT_PREFIX, logger });
}

/** Job queues on JetStream (stream JOBS_STREAM) when NATS_URL is set, else in process. */
export async function jobQueueFor(config: Config, logger: Logger): Promise<JobQueue> {
  if (!config.NATS_URL) return new InProcessJobQueue(logger);
  return JetStreamJobQueue.connect({ url: config.NATS_URL, stream: config.JOBS_STREAM, subjectPrefix: config.JOBS_SUBJECT_PREFIX, logger });
}
