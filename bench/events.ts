/**
 * Events bench: N events through outbox -> OutboxRelay -> transport -> EventConsumer (inbox +
 * a per-user counter upsert), over JetStream (file storage) and the in-process transport, one
 * after the other in one run. Prints events/s from the first commit to the last handled event,
 * and commit-to-handled latency; exits 1 if the counters or the inbox do not add up to N.
 *
 *   npm run bench:events -- --events 20000 --batch 50 --transports jetstream,in-process
 *
 * --batch: events per producer transaction; --producers: concurrent producers (4); --rate:
 * events/s offered in all (default 0, a burst: latency is then mostly the wait in the backlog;
 * a rate below the throughput shows the pipeline's own latency); --warmup: events run through
 * each pipeline first, unmeasured (1000); --per-event: the consumer handles events one
 * statement each instead of one statement per batch (handleMany).
 *
 * Sets up everything itself: a fresh database on DATABASE_URL's server (default the local
 * postgres), dropped at the end; a nats-server on a free port with a temporary store unless
 * NATS_URL is given; a stream and subject prefix of its own, deleted at the end.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { InProcessTransport } from '../platform/events/in-process.js';
import { JetStreamTransport } from '../platform/events/jetstream.js';
import type { EventTransport } from '../platform/events/transport.js';
import { createLogger } from '../platform/log.js';
import { createTestDatabase } from '../test/support/database.js';
import { startNatsServer, type RunningNatsServer } from '../test/support/nats-server.js';
import { runPipeline, type PipelineResult } from './events-pipeline.js';

const TRANSPORTS = ['jetstream', 'in-process'] as const;
type TransportName = (typeof TRANSPORTS)[number];

const { values: flags } = parseArgs({
  options: {
    events: { type: 'string', default: '20000' },
    batch: { type: 'string', default: '50' },
    producers: { type: 'string', default: '4' },
    rate: { type: 'string', default: '0' },
    warmup: { type: 'string', default: '1000' },
    transports: { type: 'string', default: TRANSPORTS.join(',') },
    'per-event': { type: 'boolean', default: false },
  },
});

function count(flag: 'events' | 'batch' | 'producers' | 'rate' | 'warmup', min: number): number {
  const value = Number(flags[flag]);
  if (!Number.isInteger(value) || value < min) fail(`--${flag} must be an integer >= ${min}, got '${flags[flag]}'`);
  return value;
}

function fail(message: string): never {
  console.error(`bench:events: ${message}`);
  process.exit(1);
}

const events = count('events', 1);
const batch = count('batch', 1);
const producers = count('producers', 1);
const rate = count('rate', 0);
const warmup = count('warmup', 0);
const transports = flags.transports.split(',').map((name) => name.trim());
for (const name of transports) if (!TRANSPORTS.includes(name as TransportName)) fail(`unknown transport '${name}' (known: ${TRANSPORTS.join(', ')})`);

const log = createLogger('info', 'bench');
// The platform's components log warnings and errors only, unless LOG_LEVEL asks for more.
const platformLog = createLogger(process.env.LOG_LEVEL ?? 'warn');
const token = randomBytes(4).toString('hex');
const abort = new AbortController();
process.once('SIGINT', () => abort.abort(new Error('interrupted')));

const results: PipelineResult[] = [];
const db = await createTestDatabase(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
let nats: RunningNatsServer | null = null;
let natsUrl = process.env.NATS_URL ?? null;
const stream = `BENCH_EVENTS_${token}`;
try {
  if (transports.includes('jetstream') && !natsUrl) {
    nats = await startNatsServer();
    natsUrl = nats.url;
  }
  for (const name of transports as TransportName[]) {
    const transport: EventTransport =
      name === 'jetstream'
        ? await JetStreamTransport.connect({ url: natsUrl!, stream, subjectPrefix: `bench${token}.events.`, logger: platformLog })
        : new InProcessTransport({ logger: platformLog });
    results.push(await runPipeline({ name, databaseUrl: db.url, transport, events, batch, producers, rate, warmup, perEvent: flags['per-event'], log, platformLog, signal: abort.signal }));
  }
} finally {
  if (natsUrl && transports.includes('jetstream')) await deleteStream(natsUrl, stream).catch((error: unknown) => log.warn({ err: error, stream }, 'could not delete the bench stream'));
  await nats?.stop();
  await db.drop();
}

printTable(results);
const problems = results.flatMap((result) => result.problems.map((problem) => `${result.name}: ${problem}`));
if (problems.length) fail(`correctness check failed:\n  ${problems.join('\n  ')}`);
console.log(`\ncorrectness: counter sum and inbox rows = ${events} for every transport`);

async function deleteStream(url: string, name: string): Promise<void> {
  const nc = await connect({ servers: url });
  try {
    await (await jetstreamManager(nc)).streams.delete(name);
  } finally {
    await nc.close();
  }
}

function printTable(rows: PipelineResult[]): void {
  const header = ['transport', 'events', 'events/s', 'p50 ms', 'p99 ms', 'max ms'];
  const lines = rows.map((row) => {
    const sorted = [...row.latenciesMs].sort((a, b) => a - b);
    return [row.name, String(row.events), (row.events / row.seconds).toFixed(0), ...[0.5, 0.99, 1].map((p) => percentile(sorted, p).toFixed(1))];
  });
  const widths = header.map((title, i) => Math.max(title.length, ...lines.map((line) => line[i]!.length)));
  const format = (cells: string[]) => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join(' | ');
  const offered = rate ? `offered at ${rate}/s` : 'offered as a burst';
  const consumer = flags['per-event'] ? 'one statement per event' : 'one statement per batch (handleMany)';
  console.log(`\n${events} events ${offered}: ${producers} producers, ${batch} events per transaction; consumer: ${consumer}; ${warmup} warm-up events per transport\n`);
  console.log(format(header));
  console.log(widths.map((width) => '-'.repeat(width)).join('-|-'));
  for (const line of lines) console.log(format(line));
  const throughput = (name: string) => {
    const row = rows.find((candidate) => candidate.name === name);
    return row ? row.events / row.seconds : null;
  };
  const js = throughput('jetstream');
  const mem = throughput('in-process');
  if (js !== null && mem !== null) console.log(`\nthroughput JetStream / in-process: ${(js / mem).toFixed(2)}`);
  // Where the time went. Producers, relay and consumer share this process's one event loop, so
  // its CPU per event bounds the throughput; relay passes and consumer batches are wall time.
  console.log('');
  for (const { name, events: handled, cpuMs, relay, consumer } of rows) {
    const per = (total: number, count: number) => (total / Math.max(1, count)).toFixed(3);
    console.log(
      `${name}: process CPU ${per(cpuMs, handled)} ms/event; ` +
        `relay ${relay.flushes} passes of ${(relay.rows / Math.max(1, relay.flushes)).toFixed(1)} rows, ${per(relay.flushMs, relay.rows)} ms/row, ` +
        `publish confirmed after ${per(relay.publishMs, relay.rows)} ms on average; ` +
        `consumer ${consumer.batches} batches of ${(consumer.events / Math.max(1, consumer.batches)).toFixed(1)} events, ${per(consumer.batchMs, consumer.events)} ms/event`,
    );
  }
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}
