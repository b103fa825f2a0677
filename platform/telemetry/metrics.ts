import type { ApolloServerPlugin } from '@apollo/server';
import { trace } from '@opentelemetry/api';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { sendError } from '../http/graphql-http.js';
import type { Handler } from '../http/server.js';
import type { JobQueue, QueuedJob } from '../jobs/queue.js';
import { withinDeadline } from '../deadline.js';

type Labels = Record<string, string>;
/** Reads current values when Prometheus scrapes: one row per label set. */
type Source = () => Promise<Array<[Labels, number]>> | Array<[Labels, number]>;

/** Seconds: from a fast resolver to a slow provider-bound mutation. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const JOB_BUCKETS = [0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600];
/**
 * A source that does not answer in time (a count waiting for a database connection, say) is
 * left out of that scrape, so the other metrics still reach Prometheus when they matter most.
 */
const SOURCE_DEADLINE_MS = 2_000;
/** Operation names come from clients: past this many distinct names per service, the rest count as "other". */
const MAX_OPERATION_NAMES = 500;

/**
 * One process's Prometheus metrics, served on `/metrics` by every process (in the all-in-one
 * mode the gateway and every subgraph share one registry, labelled by subgraph).
 *
 * Counters and histograms are updated as things happen; backlogs (outbox, consumer lag, dead
 * letters, job queues, subscriptions) are read from their owners when Prometheus scrapes, so
 * nothing polls between scrapes.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly operationNames = new Map<string, Set<string>>();

  readonly requests = new Counter({
    name: 'storyloom_graphql_requests_total',
    help: 'GraphQL operations handled, by service (gateway or subgraph), operation name and outcome (ok, error).',
    labelNames: ['service', 'operation', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly requestDuration = new Histogram({
    name: 'storyloom_graphql_request_duration_seconds',
    help: 'Time to answer a GraphQL operation, by service and operation name.',
    labelNames: ['service', 'operation'] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  readonly subgraphFetches = new Counter({
    name: 'storyloom_gateway_subgraph_fetches_total',
    help: "The gateway's requests to subgraphs, by subgraph and outcome (ok, error, timeout, rejected by the open circuit).",
    labelNames: ['subgraph', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly subgraphFetchDuration = new Histogram({
    name: 'storyloom_gateway_subgraph_fetch_duration_seconds',
    help: "Duration of the gateway's requests to each subgraph.",
    labelNames: ['subgraph'] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  readonly subgraphFetchesShared = new Counter({
    name: 'storyloom_gateway_subgraph_fetches_shared_total',
    help: 'Calls to a subgraph that shared an identical one already in flight (same query, variables and caller) instead of being sent.',
    labelNames: ['subgraph'] as const,
    registers: [this.registry],
  });
  readonly circuitState = new Gauge({
    name: 'storyloom_gateway_circuit_state',
    help: "The gateway's circuit breaker per subgraph: 0 closed, 1 half-open, 2 open.",
    labelNames: ['subgraph'] as const,
    registers: [this.registry],
  });
  readonly rateLimited = new Counter({
    name: 'storyloom_gateway_rate_limited_total',
    help: 'Requests the gateway refused with 429, by the bucket that was empty (user or ip).',
    labelNames: ['bucket'] as const,
    registers: [this.registry],
  });
  readonly rateLimitStoreErrors = new Counter({
    name: 'storyloom_gateway_rate_limit_store_errors_total',
    help: "Failures of the rate limits' shared store (NATS KV); requests are allowed while it fails.",
    registers: [this.registry],
  });
  readonly redeliveries = new Counter({
    name: 'storyloom_consumer_redeliveries_total',
    help: 'Events delivered again to a durable consumer (after a failure, a crash or an expired ack wait), by subgraph and consumer.',
    labelNames: ['subgraph', 'consumer'] as const,
    registers: [this.registry],
  });
  readonly eventsHandled = new Counter({
    name: 'storyloom_events_handled_total',
    help: 'Events handled by durable consumers, by subgraph and consumer.',
    labelNames: ['subgraph', 'consumer'] as const,
    registers: [this.registry],
  });
  readonly jobDuration = new Histogram({
    name: 'storyloom_job_duration_seconds',
    help: 'Duration of job runs (narration, video), by queue and outcome (done, failed, interrupted).',
    labelNames: ['queue', 'outcome'] as const,
    buckets: JOB_BUCKETS,
    registers: [this.registry],
  });

  readonly outboxBacklog = this.observed('storyloom_outbox_backlog', 'Committed events not yet published by the outbox relay, by subgraph.', ['subgraph']);
  readonly consumerLag = this.observed('storyloom_consumer_pending_events', 'Events in the stream a durable consumer has not taken yet.', ['consumer']);
  readonly consumerInFlight = this.observed('storyloom_consumer_in_flight_events', 'Events delivered to a durable consumer and not yet acknowledged.', ['consumer']);
  readonly deadLetters = this.observed('storyloom_dead_letters', 'Events a consumer gave up on that were not replayed yet, by subgraph and consumer.', ['subgraph', 'consumer']);
  readonly jobQueueDepth = this.observed('storyloom_job_queue_depth', 'Jobs queued and not yet taken by a worker, by queue.', ['queue']);
  readonly activeSubscriptions = this.observed('storyloom_active_subscriptions', 'GraphQL subscriptions open on the gateway.', []);

  /** Process CPU, memory, event loop lag, handles: for a process of its own (not per test stack). */
  collectProcessMetrics(prefix = 'storyloom_'): this {
    collectDefaultMetrics({ register: this.registry, prefix });
    return this;
  }

  /**
   * An operation name as a label for `service`: bounded per service, so clients cannot grow
   * the registry without end (names beyond the first 500 count as `other`).
   */
  operationLabel(name: string | null | undefined, service = ''): string {
    if (!name) return 'anonymous';
    const known = this.operationNames.get(service) ?? new Set<string>();
    this.operationNames.set(service, known);
    if (known.has(name)) return name;
    if (known.size >= MAX_OPERATION_NAMES || !/^[A-Za-z_][A-Za-z0-9_]{0,99}$/.test(name)) return 'other';
    known.add(name);
    return name;
  }

  /** `GET /metrics`: the text format Prometheus scrapes. */
  route(): Handler {
    return async (req, res) => {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.setHeader('allow', 'GET, HEAD');
        return sendError(res, 405, 'METHOD_NOT_ALLOWED', 'Use GET');
      }
      const body = await this.registry.metrics();
      res.writeHead(200, { 'content-type': this.registry.contentType, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
  }

  /**
   * Apollo Server plugin counting and timing each operation as `service`, and naming the active
   * trace span after the operation (the span itself is the HTTP route's).
   */
  apolloPlugin(service: string): ApolloServerPlugin<any> {
    const metrics = this;
    return {
      async requestDidStart() {
        const started = process.hrtime.bigint();
        return {
          async didResolveOperation({ operationName }) {
            if (operationName) trace.getActiveSpan()?.setAttribute('graphql.operation.name', operationName);
          },
          async willSendResponse({ operationName, operation: resolved, response }) {
            // Only a document that parsed and validated has a name worth a label: the name a
            // client gives with a broken one would let anyone fill the list of names.
            const operation = resolved ? metrics.operationLabel(operationName, service) : 'invalid';
            const body = response.body;
            const failed = body.kind === 'single' && !!body.singleResult.errors?.length;
            metrics.requests.inc({ service, operation, outcome: failed ? 'error' : 'ok' });
            metrics.requestDuration.observe({ service, operation }, Number(process.hrtime.bigint() - started) / 1e9);
          },
        };
      },
    };
  }

  /**
   * A JobQueue whose workers' runs are timed, and whose queues' depth is read at scrape time.
   * The wrapped queue does the work; this only watches.
   */
  instrumentJobs(jobs: JobQueue): JobQueue {
    const metrics = this;
    const watched = new Map<string, () => void>();
    return {
      kind: jobs.kind,
      enqueue: (queue, job, options) => jobs.enqueue(queue, job, options),
      depth: (queue) => jobs.depth(queue),
      async work(queue, options, handler) {
        if (!watched.has(queue)) watched.set(queue, metrics.jobQueueDepth.add(async () => [[{ queue }, await jobs.depth(queue)]]));
        return jobs.work(queue, options, async (job: QueuedJob) => {
          const started = process.hrtime.bigint();
          let outcome = 'failed';
          try {
            await handler(job);
            outcome = 'done';
          } catch (error) {
            if (job.signal.aborted) outcome = 'interrupted';
            throw error;
          } finally {
            metrics.jobDuration.observe({ queue, outcome }, Number(process.hrtime.bigint() - started) / 1e9);
          }
        });
      },
      close: () => {
        // A closed queue has no depth to read.
        for (const unwatch of watched.values()) unwatch();
        watched.clear();
        return jobs.close();
      },
    };
  }

  /**
   * A gauge read from sources at scrape time. `add` returns the way to remove the source (a
   * subgraph that stops takes its rows with it). A source that fails is left out of that scrape.
   */
  private observed(name: string, help: string, labelNames: string[]) {
    const sources = new Set<Source>();
    new Gauge({
      name,
      help,
      labelNames,
      registers: [this.registry],
      async collect() {
        this.reset();
        const read = await Promise.all([...sources].map((source) => withinDeadline(Promise.resolve().then(source), SOURCE_DEADLINE_MS).catch(() => [] as Array<[Labels, number]>)));
        for (const rows of read) {
          try {
            for (const [labels, value] of rows) this.set(labels, Number(value));
          } catch {
            // A source's bad row (a label the gauge lacks) costs its own rows, not the scrape.
          }
        }
      },
    });
    return {
      add(source: Source): () => void {
        sources.add(source);
        return () => void sources.delete(source);
      },
    };
  }
}
