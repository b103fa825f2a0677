import { randomBytes } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, describe, expect, inject, it, vi } from 'vitest';
import { createLogger } from '../log.js';
import { JetStreamJobQueue } from './jetstream.js';
import { jobQueueContract } from './queue.contract.js';
import type { QueuedJob } from './queue.js';

const natsUrl = inject('natsUrl');
const logger = createLogger('silent');
const stream = `JOBS_T${randomBytes(4).toString('hex')}`;
const open = () => JetStreamJobQueue.connect({ url: natsUrl, stream, subjectPrefix: `${stream.toLowerCase()}.`, logger });

afterAll(async () => {
  const nc = await connect({ servers: natsUrl });
  await (await jetstreamManager(nc)).streams.delete(stream).catch(() => false);
  await nc.close();
});

jobQueueContract('JetStream', open);

describe('JetStream job queue', () => {
  it('gives the job of a process that died to another worker once the ack wait runs out', async () => {
    const name = `crash_${randomBytes(3).toString('hex')}`;
    const doomed = await open();
    const taken: QueuedJob[] = [];
    await doomed.work(name, { concurrency: 1, ackWaitMs: 600 }, async (job) => {
      taken.push(job);
      await new Promise(() => {});
    });
    await doomed.enqueue(name, { id: 'survivor', data: { part: 3 } });
    await vi.waitFor(() => expect(taken).toHaveLength(1), { timeout: 5000 });
    // The process "dies": its connection goes without acknowledging or handing anything back.
    await doomed.close();

    const heir = await open();
    const resumed: QueuedJob[] = [];
    const worker = await heir.work(name, { concurrency: 1, ackWaitMs: 600 }, async (job) => {
      resumed.push(job);
    });
    try {
      await vi.waitFor(() => expect(resumed).toHaveLength(1), { timeout: 10_000 });
      expect(resumed[0]).toMatchObject({ id: 'survivor', data: { part: 3 }, attempt: 2 });
    } finally {
      await worker.stop();
      await heir.close();
    }
  });
});
