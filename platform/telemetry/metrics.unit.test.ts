import type { Server } from 'node:http';
import { ApolloServer } from '@apollo/server';
import { trace } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { closeServer, createHttpServer, listen } from '../http/server.js';
import { InProcessJobQueue } from '../jobs/in-process.js';
import type { JobQueue, QueuedJob, Worker } from '../jobs/queue.js';
import { createLogger } from '../log.js';
import { Metrics } from './metrics.js';
import { setupTracing } from './tracing.js';

const logger = createLogger('silent');

/**
 * One sample as Prometheus would scrape it (observed gauges are collected on the way): the value
 * of `sample` (a metric name, or a histogram's `_bucket`/`_sum`/`_count`) whose labels are
 * exactly `labels`; undefined when there is no such row.
 */
async function sample(metrics: Metrics, name: string, labels: Record<string, string | number>): Promise<number | undefined> {
  const wanted = JSON.stringify(Object.entries(labels).map(([key, value]) => [key, String(value)]).sort());
  for (const metric of await metrics.registry.getMetricsAsJSON()) {
    for (const row of metric.values) {
      const rowName = (row as { metricName?: string }).metricName ?? metric.name;
      const rowLabels = JSON.stringify(Object.entries(row.labels).map(([key, value]) => [key, String(value)]).sort());
      if (rowName === name && rowLabels === wanted) return row.value;
    }
  }
  return undefined;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('Metrics.operationLabel', () => {
  it('labels a missing or empty operation name anonymous', () => {
    const metrics = new Metrics();
    expect(metrics.operationLabel(undefined)).toBe('anonymous');
    expect(metrics.operationLabel(null)).toBe('anonymous');
    expect(metrics.operationLabel('')).toBe('anonymous');
  });

  it('keeps a valid name, and gives it back the same on every call', () => {
    const metrics = new Metrics();
    expect(metrics.operationLabel('StoryPage')).toBe('StoryPage');
    expect(metrics.operationLabel('StoryPage')).toBe('StoryPage');
    expect(metrics.operationLabel('_private_2')).toBe('_private_2');
    expect(metrics.operationLabel('x'.repeat(100))).toBe('x'.repeat(100));
  });

  it("labels a name that is not a GraphQL name, or longer than 100 characters, 'other'", () => {
    const metrics = new Metrics();
    for (const name of ['2fast', 'has space', 'dash-ed', 'quote"d', 'ünicode', 'x'.repeat(101)]) {
      expect(metrics.operationLabel(name), name).toBe('other');
    }
  });

  it("labels every name past 500 distinct ones 'other', while the first 500 stay themselves", () => {
    const metrics = new Metrics();
    // Rejected names take no place among the 500.
    for (let i = 0; i < 50; i++) metrics.operationLabel(`bad name ${i}`);
    for (let i = 0; i < 500; i++) expect(metrics.operationLabel(`Op${i}`)).toBe(`Op${i}`);
    expect(metrics.operationLabel('Op500')).toBe('other');
    expect(metrics.operationLabel('LateComer')).toBe('other');
    expect(metrics.operationLabel('Op0')).toBe('Op0');
    expect(metrics.operationLabel('Op499')).toBe('Op499');
    // Each service has its own 500: the gateway's full list leaves a subgraph's free.
    expect(metrics.operationLabel('LateComer', 'story')).toBe('LateComer');
  });
});

describe('Metrics.apolloPlugin', () => {
  const typeDefs = 'type Query { hello: String, boom: String, slow: String }';

  async function startServer(metrics: Metrics, service: string, slowSeconds = 0) {
    const server = new ApolloServer({
      typeDefs,
      resolvers: {
        Query: {
          hello: () => 'world',
          boom: () => {
            throw new Error('boom');
          },
          // Time passes on the faked high-resolution clock the plugin reads.
          slow: () => {
            vi.advanceTimersByTime(slowSeconds * 1000);
            return 'late';
          },
        },
      },
      plugins: [metrics.apolloPlugin(service)],
    });
    await server.start();
    return server;
  }

  it('counts operations that succeed as ok, by service and operation name', async () => {
    const metrics = new Metrics();
    const server = await startServer(metrics, 'story');
    try {
      await server.executeOperation({ query: 'query Hello { hello }' });
      await server.executeOperation({ query: 'query Hello { hello }' });
      await server.executeOperation({ query: '{ hello }' });
      expect(await sample(metrics, 'storyloom_graphql_requests_total', { service: 'story', operation: 'Hello', outcome: 'ok' })).toBe(2);
      expect(await sample(metrics, 'storyloom_graphql_requests_total', { service: 'story', operation: 'anonymous', outcome: 'ok' })).toBe(1);
      expect(await sample(metrics, 'storyloom_graphql_requests_total', { service: 'story', operation: 'Hello', outcome: 'error' })).toBeUndefined();
      expect(await sample(metrics, 'storyloom_graphql_request_duration_seconds_count', { service: 'story', operation: 'Hello' })).toBe(2);
    } finally {
      await server.stop();
    }
  });

  it('counts an operation whose result carries errors as error', async () => {
    const metrics = new Metrics();
    const server = await startServer(metrics, 'billing');
    try {
      const response = await server.executeOperation({ query: 'query Both { hello boom }' });
      expect(response.body.kind === 'single' && response.body.singleResult.errors?.[0]?.message).toBe('boom');
      expect(await sample(metrics, 'storyloom_graphql_requests_total', { service: 'billing', operation: 'Both', outcome: 'error' })).toBe(1);
      expect(await sample(metrics, 'storyloom_graphql_requests_total', { service: 'billing', operation: 'Both', outcome: 'ok' })).toBeUndefined();
    } finally {
      await server.stop();
    }
  });

  it('counts a request that fails to parse or validate as an invalid error, whatever name its client gave', async () => {
    const metrics = new Metrics();
    const server = await startServer(metrics, 'gateway');
    try {
      await server.executeOperation({ query: 'query Broken {' });
      await server.executeOperation({ query: 'query Unknown { nope }' });
      // Named by the client or not, a document that did not resolve is `invalid`: its name takes no place in the list.
      await server.executeOperation({ query: 'query Named { nope }', operationName: 'Named' });
      expect(await sample(metrics, 'storyloom_graphql_requests_total', { service: 'gateway', operation: 'invalid', outcome: 'error' })).toBe(3);
      expect(await sample(metrics, 'storyloom_graphql_requests_total', { service: 'gateway', operation: 'Named', outcome: 'error' })).toBeUndefined();
    } finally {
      await server.stop();
    }
  });

  it('observes how long the operation took, in seconds', async () => {
    vi.useFakeTimers({ toFake: ['hrtime'] });
    const metrics = new Metrics();
    const server = await startServer(metrics, 'story', 1.5);
    try {
      await server.executeOperation({ query: 'query Slow { slow }' });
      const labels = { service: 'story', operation: 'Slow' };
      expect(await sample(metrics, 'storyloom_graphql_request_duration_seconds_sum', labels)).toBeCloseTo(1.5, 6);
      expect(await sample(metrics, 'storyloom_graphql_request_duration_seconds_count', labels)).toBe(1);
      expect(await sample(metrics, 'storyloom_graphql_request_duration_seconds_bucket', { ...labels, le: 1 })).toBe(0);
      expect(await sample(metrics, 'storyloom_graphql_request_duration_seconds_bucket', { ...labels, le: 2.5 })).toBe(1);
    } finally {
      await server.stop();
    }
  });

  it('names the active span after the operation', async () => {
    const exporter = new InMemorySpanExporter();
    const tracing = setupTracing({ serviceName: 'metrics-test', exporter });
    const metrics = new Metrics();
    const server = await startServer(metrics, 'story');
    try {
      await trace.getTracer('test').startActiveSpan('POST /graphql', async (span) => {
        await server.executeOperation({ query: 'query Named { hello }' });
        span.end();
      });
      const [span] = exporter.getFinishedSpans();
      expect(span?.name).toBe('POST /graphql');
      expect(span?.attributes['graphql.operation.name']).toBe('Named');
    } finally {
      await server.stop();
      await tracing.shutdown();
    }
  });
});

describe('Metrics observed gauges', () => {
  it('reads each source when scraped, so every scrape shows current values', async () => {
    const metrics = new Metrics();
    let story = 3;
    metrics.outboxBacklog.add(() => [[{ subgraph: 'story' }, story]]);
    metrics.outboxBacklog.add(async () => [[{ subgraph: 'billing' }, 7]]);
    expect(await sample(metrics, 'storyloom_outbox_backlog', { subgraph: 'story' })).toBe(3);
    expect(await sample(metrics, 'storyloom_outbox_backlog', { subgraph: 'billing' })).toBe(7);
    story = 11;
    expect(await sample(metrics, 'storyloom_outbox_backlog', { subgraph: 'story' })).toBe(11);
    expect(await metrics.registry.metrics()).toContain('storyloom_outbox_backlog{subgraph="story"} 11');
  });

  it('shows several rows of one source, and a gauge without labels', async () => {
    const metrics = new Metrics();
    metrics.deadLetters.add(async () => [
      [{ subgraph: 'notification', consumer: 'mailer' }, 2],
      [{ subgraph: 'notification', consumer: 'sms' }, 5],
    ]);
    metrics.activeSubscriptions.add(() => [[{}, 4]]);
    expect(await sample(metrics, 'storyloom_dead_letters', { subgraph: 'notification', consumer: 'mailer' })).toBe(2);
    expect(await sample(metrics, 'storyloom_dead_letters', { subgraph: 'notification', consumer: 'sms' })).toBe(5);
    expect(await sample(metrics, 'storyloom_active_subscriptions', {})).toBe(4);
  });

  it('drops the rows of a source once its remover is called', async () => {
    const metrics = new Metrics();
    const removeStory = metrics.consumerLag.add(() => [[{ consumer: 'story-projector' }, 9]]);
    metrics.consumerLag.add(() => [[{ consumer: 'billing-ledger' }, 1]]);
    expect(await sample(metrics, 'storyloom_consumer_pending_events', { consumer: 'story-projector' })).toBe(9);
    removeStory();
    expect(await sample(metrics, 'storyloom_consumer_pending_events', { consumer: 'story-projector' })).toBeUndefined();
    expect(await sample(metrics, 'storyloom_consumer_pending_events', { consumer: 'billing-ledger' })).toBe(1);
  });

  it('leaves a source that throws or rejects out of that scrape, and keeps the others', async () => {
    const metrics = new Metrics();
    let down = true;
    metrics.consumerInFlight.add(() => {
      if (down) throw new Error('nats is down');
      return [[{ consumer: 'flaky' }, 6]];
    });
    metrics.consumerInFlight.add(async () => {
      throw new Error('rejected');
    });
    metrics.consumerInFlight.add(async () => [[{ consumer: 'steady' }, 2]]);
    metrics.consumerLag.add(() => [[{ consumer: 'steady' }, 8]]);

    const text = await metrics.registry.metrics();
    expect(text).toContain('storyloom_consumer_in_flight_events{consumer="steady"} 2');
    expect(text).toContain('storyloom_consumer_pending_events{consumer="steady"} 8');
    expect(text).not.toContain('consumer="flaky"');

    down = false;
    expect(await sample(metrics, 'storyloom_consumer_in_flight_events', { consumer: 'flaky' })).toBe(6);
  });

  it('leaves out a source whose rows are bad, or that does not answer within 2 s, and keeps the others', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const metrics = new Metrics();
      metrics.outboxBacklog.add(() => [[{ consumer: 'not-a-label-of-this-gauge' }, 1]]);
      metrics.outboxBacklog.add(() => new Promise<never>(() => {}));
      metrics.outboxBacklog.add(() => [[{ subgraph: 'billing' }, 3]]);
      const scrape = metrics.registry.metrics();
      await vi.advanceTimersByTimeAsync(2_000);
      const text = await scrape;
      expect(text).toContain('storyloom_outbox_backlog{subgraph="billing"} 3');
      expect(text).not.toContain('not-a-label-of-this-gauge');
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('Metrics.instrumentJobs', () => {
  const options = { concurrency: 1, ackWaitMs: 60_000, maxAttempts: 1 };
  let worker: Worker | undefined;
  let jobs: JobQueue | undefined;

  afterEach(async () => {
    await worker?.stop();
    await jobs?.close();
    worker = undefined;
    jobs = undefined;
  });

  const jobCount = (metrics: Metrics, queue: string, outcome: string) => sample(metrics, 'storyloom_job_duration_seconds_count', { queue, outcome });

  it('times a job that is done, in seconds, as done', async () => {
    vi.useFakeTimers({ toFake: ['hrtime'] });
    const metrics = new Metrics();
    jobs = metrics.instrumentJobs(new InProcessJobQueue(logger));
    worker = await jobs.work('narration', options, async () => {
      vi.advanceTimersByTime(7_000);
    });
    await jobs.enqueue('narration', { id: 'n1' });
    await vi.waitFor(async () => expect(await jobCount(metrics, 'narration', 'done')).toBe(1), { timeout: 5_000 });
    expect(await sample(metrics, 'storyloom_job_duration_seconds_sum', { queue: 'narration', outcome: 'done' })).toBeCloseTo(7, 6);
    expect(await sample(metrics, 'storyloom_job_duration_seconds_bucket', { queue: 'narration', outcome: 'done', le: 5 })).toBe(0);
    expect(await sample(metrics, 'storyloom_job_duration_seconds_bucket', { queue: 'narration', outcome: 'done', le: 15 })).toBe(1);
    expect(await jobCount(metrics, 'narration', 'failed')).toBeUndefined();
  });

  it('times a job whose handler throws as failed', async () => {
    const metrics = new Metrics();
    jobs = metrics.instrumentJobs(new InProcessJobQueue(logger));
    worker = await jobs.work('video', options, async () => {
      throw new Error('provider refused');
    });
    await jobs.enqueue('video', { id: 'v1' });
    await vi.waitFor(async () => expect(await jobCount(metrics, 'video', 'failed')).toBe(1), { timeout: 5_000 });
    expect(await jobCount(metrics, 'video', 'done')).toBeUndefined();
    expect(await jobCount(metrics, 'video', 'interrupted')).toBeUndefined();
  });

  it('times a job the stopping worker aborts as interrupted, and counts it waiting again', async () => {
    const metrics = new Metrics();
    jobs = metrics.instrumentJobs(new InProcessJobQueue(logger));
    const taken: QueuedJob[] = [];
    worker = await jobs.work('video', options, async (job) => {
      taken.push(job);
      await new Promise((_, reject) => job.signal.addEventListener('abort', () => reject(job.signal.reason)));
    });
    await jobs.enqueue('video', { id: 'v2' });
    await vi.waitFor(() => expect(taken).toHaveLength(1), { timeout: 5_000 });
    await worker.stop();
    worker = undefined;
    expect(await jobCount(metrics, 'video', 'interrupted')).toBe(1);
    expect(await jobCount(metrics, 'video', 'failed')).toBeUndefined();
    // The in-process queue hands an interrupted job back to the head of the queue.
    expect(await sample(metrics, 'storyloom_job_queue_depth', { queue: 'video' })).toBe(1);
  });

  it('reports the jobs waiting in each worked queue at scrape time', async () => {
    const metrics = new Metrics();
    jobs = metrics.instrumentJobs(new InProcessJobQueue(logger));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const taken: string[] = [];
    worker = await jobs.work('narration', options, async (job) => {
      taken.push(job.id);
      await gate;
    });
    expect(await sample(metrics, 'storyloom_job_queue_depth', { queue: 'narration' })).toBe(0);
    for (const id of ['a', 'b', 'c']) await jobs.enqueue('narration', { id });
    await vi.waitFor(() => expect(taken).toEqual(['a']), { timeout: 5_000 });
    expect(await sample(metrics, 'storyloom_job_queue_depth', { queue: 'narration' })).toBe(2);
    release();
    await vi.waitFor(async () => expect(await jobCount(metrics, 'narration', 'done')).toBe(3), { timeout: 5_000 });
    expect(await sample(metrics, 'storyloom_job_queue_depth', { queue: 'narration' })).toBe(0);
    // A closed queue is no longer read.
    await worker.stop();
    worker = undefined;
    await jobs.close();
    jobs = undefined;
    expect(await sample(metrics, 'storyloom_job_queue_depth', { queue: 'narration' })).toBeUndefined();
  });

  it('passes enqueue, depth and kind through to the queue it watches', async () => {
    const metrics = new Metrics();
    const inner = new InProcessJobQueue(logger);
    jobs = metrics.instrumentJobs(inner);
    expect(jobs.kind).toBe('IN_PROCESS');
    await jobs.enqueue('media', { id: 'm1' });
    await jobs.enqueue('media', { id: 'm1' });
    expect(await inner.depth('media')).toBe(1);
    expect(await jobs.depth('media')).toBe(1);
    // Nothing works the queue here, so this process reports no depth for it.
    expect(await sample(metrics, 'storyloom_job_queue_depth', { queue: 'media' })).toBeUndefined();
  });
});

describe('Metrics.route', () => {
  let server: Server | undefined;

  afterEach(async () => {
    if (server) await closeServer(server);
    server = undefined;
  });

  async function serve(metrics: Metrics): Promise<string> {
    server = createHttpServer({ '/metrics': metrics.route() }, logger);
    return `${await listen(server, 0, '127.0.0.1')}/metrics`;
  }

  it('answers GET with the registry in the Prometheus text format', async () => {
    const metrics = new Metrics();
    metrics.requests.inc({ service: 'story', operation: 'Hello', outcome: 'ok' });
    metrics.jobQueueDepth.add(() => [[{ queue: 'narration' }, 4]]);
    const response = await fetch(await serve(metrics));
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe(metrics.registry.contentType);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const body = await response.text();
    expect(body).toContain('# TYPE storyloom_graphql_requests_total counter');
    expect(body).toContain('storyloom_graphql_requests_total{service="story",operation="Hello",outcome="ok"} 1');
    expect(body).toContain('storyloom_job_queue_depth{queue="narration"} 4');
  });

  it('answers HEAD with the headers and no body', async () => {
    const metrics = new Metrics();
    const response = await fetch(await serve(metrics), { method: 'HEAD' });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe(metrics.registry.contentType);
    expect(await response.text()).toBe('');
  });

  it('refuses POST with 405', async () => {
    const metrics = new Metrics();
    metrics.requests.inc({ service: 'story', operation: 'Hello', outcome: 'ok' });
    const response = await fetch(await serve(metrics), { method: 'POST', body: '{}' });
    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toBe('GET, HEAD');
    const body = await response.json();
    expect(body).toEqual({ errors: [{ message: 'Use GET', extensions: { code: 'METHOD_NOT_ALLOWED' } }] });
  });
});
