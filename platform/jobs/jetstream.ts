import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, JetStreamApiCodes, JetStreamApiError, RetentionPolicy, StorageType, type JetStreamClient, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import { connect, nanos, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../log.js';
import { assertQueueName, defaultJobBackoffMs, type JobQueue, type QueuedJob, type WorkOptions, type Worker } from './queue.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Jobs on a JetStream work-queue stream (a message is removed once acknowledged), one durable
 * pull consumer per queue shared by every worker of that queue: each job goes to one of them.
 */
export class JetStreamJobQueue implements JobQueue {
  readonly kind = 'NATS' as const;
  private readonly js: JetStreamClient;
  private readonly ensured = new Map<string, Promise<void>>();

  private constructor(
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly stream: string,
    private readonly prefix: string,
    private readonly logger: Logger,
  ) {
    this.js = jetstream(nc);
  }

  static async connect(options: { url: string; stream?: string; subjectPrefix?: string; logger: Logger }): Promise<JetStreamJobQueue> {
    const stream = options.stream ?? 'JOBS';
    const prefix = options.subjectPrefix ?? 'jobs.';
    if (!prefix.endsWith('.')) throw new Error(`subjectPrefix must end with '.', got '${prefix}'`);
    const nc = await connect({ servers: options.url, name: `storyloom-jobs-${stream}`, maxReconnectAttempts: -1, noAsyncTraces: true });
    try {
      const jsm = await jetstreamManager(nc);
      const exists = await jsm.streams.info(stream).then(
        () => true,
        (error: unknown) => {
          if (isApiError(error, JetStreamApiCodes.StreamNotFound)) return false;
          throw error;
        },
      );
      if (!exists) {
        await jsm.streams.add({ name: stream, subjects: [prefix + '>'], retention: RetentionPolicy.Workqueue, storage: StorageType.File, duplicate_window: nanos(10 * 60_000) });
      }
      return new JetStreamJobQueue(nc, jsm, stream, prefix, options.logger);
    } catch (error) {
      await nc.close();
      throw error;
    }
  }

  async enqueue(queue: string, job: { id: string; data?: unknown }, options: { key?: string } = {}): Promise<void> {
    assertQueueName(queue);
    await this.js.publish(this.prefix + queue, encoder.encode(JSON.stringify({ id: job.id, data: job.data ?? null })), { msgID: `${queue}:${options.key ?? job.id}` });
  }

  async work(queue: string, options: WorkOptions, handler: (job: QueuedJob) => Promise<void>): Promise<Worker> {
    assertQueueName(queue);
    await this.ensureConsumer(queue, options);
    const consumer = await this.js.consumers.get(this.stream, queue);
    const maxAttempts = options.maxAttempts ?? 5;
    const backoff = options.backoffMs ?? defaultJobBackoffMs;
    const running = new Set<Promise<void>>();
    let stopped = false;
    const stopping = new AbortController();
    let freeSlot: (() => void) | null = null;

    const handle = async (msg: JsMsg) => {
      const attempt = msg.info.deliveryCount;
      let job: { id: string; data: unknown };
      try {
        job = JSON.parse(decoder.decode(msg.data));
        if (typeof job.id !== 'string') throw new Error('no id');
      } catch (error) {
        this.logger.error({ err: error, queue, seq: msg.seq }, 'malformed job message; dropped');
        msg.term();
        return;
      }
      // The handler is alive while it runs: tell the server before the ack wait runs out, so only
      // a dead process lets a job go to another worker.
      const keepAlive = setInterval(() => {
        try {
          msg.working();
        } catch {
          // The connection is closing: the job goes back to the queue when its ack wait runs out.
        }
      }, Math.max(100, Math.floor(options.ackWaitMs / 3)));
      try {
        await handler({ id: job.id, data: job.data, attempt, signal: stopping.signal });
        msg.ack();
      } catch (error) {
        if (stopped) {
          // Interrupted by stop(): straight back to the queue, for this process's successor.
          msg.nak();
        } else if (attempt >= maxAttempts) {
          this.logger.error({ err: error, queue, jobId: job.id, attempt }, 'job failed on every attempt; dropped');
          msg.term();
        } else {
          this.logger.warn({ err: error, queue, jobId: job.id, attempt }, 'job failed; retrying');
          msg.nak(backoff(attempt));
        }
      } finally {
        clearInterval(keepAlive);
      }
    };

    // One message pulled per free slot (not a stream of them): a message waiting in this
    // process would get no keep-alive, run out its ack wait and reach another worker too.
    const loop = (async () => {
      while (!stopped) {
        while (running.size >= options.concurrency && !stopped) await new Promise<void>((resolve) => (freeSlot = resolve));
        if (stopped) break;
        let msg: JsMsg | null;
        try {
          msg = await consumer.next({ expires: 2000 });
        } catch (error) {
          if (stopped) break;
          this.logger.warn({ err: error, queue }, 'could not pull a job; retrying');
          await new Promise((resolve) => setTimeout(resolve, 1000));
          continue;
        }
        if (!msg) continue;
        if (stopped) {
          msg.nak();
          break;
        }
        const run = handle(msg).finally(() => {
          running.delete(run);
          freeSlot?.();
          freeSlot = null;
        });
        running.add(run);
      }
    })();

    return {
      stop: async () => {
        stopped = true;
        stopping.abort(new Error('the worker is stopping'));
        freeSlot?.();
        await loop;
        await Promise.allSettled([...running]);
      },
    };
  }

  async depth(queue: string): Promise<number> {
    assertQueueName(queue);
    // The queue's one durable consumer knows what it has not delivered yet; none yet: nothing taken.
    const info = await this.jsm.consumers.info(this.stream, queue).catch((error: unknown) => {
      if (isApiError(error, JetStreamApiCodes.ConsumerNotFound)) return null;
      throw error;
    });
    if (info) return info.num_pending;
    const stream = await this.jsm.streams.info(this.stream, { subjects_filter: this.prefix + queue });
    return stream.state.subjects?.[this.prefix + queue] ?? 0;
  }

  async close(): Promise<void> {
    await this.nc.drain().catch(() => this.nc.close());
  }

  private ensureConsumer(queue: string, options: WorkOptions): Promise<void> {
    let ensured = this.ensured.get(queue);
    if (!ensured) {
      ensured = (async () => {
        const config = {
          durable_name: queue,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          filter_subject: this.prefix + queue,
          ack_wait: nanos(options.ackWaitMs),
          // Attempts are counted by the client (deliveryCount); the server never drops a job by itself.
          max_deliver: -1,
        };
        const exists = await this.jsm.consumers.info(this.stream, queue).then(
          () => true,
          (error: unknown) => {
            if (isApiError(error, JetStreamApiCodes.ConsumerNotFound)) return false;
            throw error;
          },
        );
        if (!exists) await this.jsm.consumers.add(this.stream, config);
        else await this.jsm.consumers.update(this.stream, queue, { ack_wait: config.ack_wait, max_deliver: config.max_deliver });
      })();
      this.ensured.set(queue, ensured);
      ensured.catch(() => this.ensured.delete(queue));
    }
    return ensured;
  }
}

function isApiError(error: unknown, code: number): boolean {
  return error instanceof JetStreamApiError && error.code === code;
}
