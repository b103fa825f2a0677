/**
 * Subscriptions bench: N graphql-ws subscribers following narration jobs through the gateway,
 * while the bench plays the jobs' workers: R rounds in which every job writes its progress and
 * publishes a live update (NarrationJob.<id>) on the NATS live bus. Prints delivered events/s,
 * publish-to-client latency, the gateway's heap per subscription and the hub's fetches.
 *
 *   npm run bench:subscriptions -- --subscribers 1000 --jobs 100 --users 10 --rounds 10 --interval-ms 4000
 *
 * The defaults offer 25 live events/s (100 jobs, each every 4 s, at its own moment of the
 * interval). Each live event costs the gateway one federated fetch (three subgraphs for this
 * selection) per group of identical subscriptions, so the event rate, not the number of
 * subscribers, is what loads it: see bench/README.md. --burst: every job publishes at the
 * start of the interval at once (the worst case); --per-connection: subscriptions per WebSocket
 * connection (1); --connect-concurrency: connections opening at once (50).
 *
 * Exits 1 if a delivery is lost (a subscriber never got the final state, or got states out of
 * order), a subscription was refused, or subscriptions outlive their clients. Rounds skipped
 * because the hub coalesced events (by design, when events come faster than its fetches) are
 * counted and fail the target, not the correctness check.
 *
 * Sets up everything itself (bench/subscriptions-stack.ts): a fresh database on DATABASE_URL's
 * server, a nats-server unless NATS_URL is given, streams and subject prefixes of its own; all
 * removed at the end. The clients run in a worker thread (bench/subscriptions-clients.ts) so
 * that this thread's heap is the server side's alone. Heap figures are taken after forced GCs;
 * `gc` comes from `v8.setFlagsFromString('--expose-gc')` then `vm.runInNewContext('gc')` (a
 * context created after the flag gets it), as the npm script cannot pass node flags to tsx.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import v8 from 'node:v8';
import vm from 'node:vm';
import { liveSubjectOf } from '../subgraphs/narration/narration.service.js';
import { clientOperation } from '../test/support/clients.js';
import { startClients, type Clients } from './subscriptions-channel.js';
import { printReport, type Outcome } from './subscriptions-report.js';
import { startBenchStack, type BenchStack } from './subscriptions-stack.js';

const { values: flags } = parseArgs({
  options: {
    subscribers: { type: 'string', default: '1000' },
    jobs: { type: 'string', default: '100' },
    users: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '10' },
    'interval-ms': { type: 'string', default: '4000' },
    'per-connection': { type: 'string', default: '1' },
    'connect-concurrency': { type: 'string', default: '50' },
    burst: { type: 'boolean', default: false },
  },
});

function count(flag: Exclude<keyof typeof flags, 'burst'>, min: number): number {
  const value = Number(flags[flag]);
  if (!Number.isInteger(value) || value < min) fail(`--${flag} must be an integer >= ${min}, got '${flags[flag]}'`);
  return value;
}

function fail(message: string): never {
  console.error(`bench:subscriptions: ${message}`);
  process.exit(1);
}

const subscribers = count('subscribers', 1);
const jobCount = count('jobs', 1);
const users = count('users', 1);
const rounds = count('rounds', 1);
const intervalMs = count('interval-ms', 1);
const perConnection = count('per-connection', 1);
const connectConcurrency = count('connect-concurrency', 1);
const spread = !flags.burst;
if (jobCount > subscribers) fail('--jobs must not exceed --subscribers (every job needs a subscriber)');
if (users > jobCount) fail('--users must not exceed --jobs (every user owns a job)');

const progress = (line: string) => process.stderr.write(`bench:subscriptions: ${line}\n`);
const now = () => performance.timeOrigin + performance.now();
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** The heap after GC: a few passes, with turns of the event loop for weak callbacks between. */
async function settledMemory(): Promise<NodeJS.MemoryUsage> {
  for (let pass = 0; pass < 4; pass++) {
    gc();
    await sleep(20);
  }
  return process.memoryUsage();
}

async function untilNoSubscribers(stack: BenchStack, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  const hub = stack.app.gateway.subscriptions.hub;
  const empty = () => hub.stats().subscribers === 0 && hub.stats().groups === 0 && stack.app.gateway.subscriptions.openSubscriptions() === 0;
  // Polling: the server notices closed sockets on its own time; nothing to await instead.
  while (!empty() && Date.now() < deadline) await sleep(20);
  return empty();
}

async function run(stack: BenchStack, clients: Clients, rssBefore: number): Promise<Outcome> {
  const { app, jobs } = stack;
  const hub = app.gateway.subscriptions.hub;

  // The two threads' clocks, compared by the fastest of a few ping-pongs (offset ± half of it).
  let clock = { offsetMs: 0, rttMs: Infinity };
  for (let n = 0; n < 5; n++) {
    const pong = await clients.ask({ type: 'ping', sent: now() }, 'pong', 10_000);
    const back = now();
    if (back - pong.sent < clock.rttMs) clock = { offsetMs: pong.at - (pong.sent + back) / 2, rttMs: back - pong.sent };
  }

  progress('warm-up subscription');
  const warm = await clients.ask({ type: 'warm-up' }, 'warmed-up', 30_000);
  if (warm.errors.length) throw new Error(`the warm-up subscription was refused: ${warm.errors.join('; ')}`);
  if (!(await untilNoSubscribers(stack, 10_000))) throw new Error('the warm-up subscription did not end on the server');
  const heapBefore = await settledMemory();
  const fetchesBefore = hub.fetches;

  progress(`subscribing ${subscribers} (${Math.ceil(subscribers / perConnection)} connections)`);
  const subscribeStart = now();
  const subscribed = await clients.ask({ type: 'subscribe' }, 'subscribed', 60_000 + 50 * subscribers);
  const subscribeMs = now() - subscribeStart;
  if (subscribed.errors.length) throw new Error(`subscriptions were refused or failed:\n  ${subscribed.errors.join('\n  ')}`);
  const heapAfter = await settledMemory();
  const hubStats = hub.stats();
  const fetchesOnSubscribe = hub.fetches - fetchesBefore;

  // Rounds on a fixed schedule (a late step does not push the later ones back). A step writes
  // its jobs' progress in one UPDATE (their workers would commit the same), then publishes a
  // live update per job. By default each job has its own step, evenly over the interval, as
  // independent workers would; --burst makes a round one step for every job at once.
  const publishedAt = new Float64Array(jobs.length * (rounds + 1));
  const steps = spread ? jobs.length : 1;
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  const cpuBefore = process.cpuUsage();
  const roundsStart = now();
  for (let round = 1; round <= rounds; round++) {
    const value = round / rounds;
    for (let step = 0; step < steps; step++) {
      const wait = roundsStart + (round - 1 + step / steps) * intervalMs - now();
      if (wait > 0) await sleep(wait);
      const members = spread ? [step] : jobs.map((_, index) => index);
      await stack.setProgress(value, members.map((index) => jobs[index]!.id));
      for (const index of members) {
        publishedAt[index * (rounds + 1) + round] = now();
        app.live.publish(liveSubjectOf(jobs[index]!.id), { id: jobs[index]!.id, status: 'RUNNING', progress: value });
      }
    }
    if (round === rounds || round % Math.max(1, Math.round(rounds / 10)) === 0) progress(`round ${round}/${rounds}`);
  }
  const roundsMs = now() - roundsStart;

  const collected = await clients.ask({ type: 'collect', waitMs: 10_000 }, 'collected', 60_000);
  const cpu = process.cpuUsage(cpuBefore);
  const busyMs = now() - roundsStart;
  loopDelay.disable();
  const fetchesOnRounds = hub.fetches - fetchesBefore - fetchesOnSubscribe;
  await clients.ask(null, 'closed', 60_000);
  const leftOver = !(await untilNoSubscribers(stack, 10_000));

  // Latency of every delivery of a round: its receipt minus its job's publish of that round.
  const latencies: number[] = [];
  let firstPublish = Infinity;
  let lastReceipt = -Infinity;
  for (let at = 0; at < publishedAt.length; at++) if (publishedAt[at]) firstPublish = Math.min(firstPublish, publishedAt[at]!);
  const { records } = collected;
  for (let i = 0; i < records.length; i += 3) {
    const [job, round, receivedAt] = [records[i]!, records[i + 1]!, records[i + 2]!];
    if (round === 0) continue;
    latencies.push(receivedAt - publishedAt[job * (rounds + 1) + round]!);
    lastReceipt = Math.max(lastReceipt, receivedAt);
  }
  return {
    subscribers,
    connections: subscribed.connections,
    jobs: jobs.length,
    users,
    rounds,
    intervalMs,
    spread,
    subscribeMs,
    roundsMs,
    expected: subscribers * (rounds + 1),
    received: collected.received,
    skipped: collected.skipped,
    withoutFinal: collected.withoutFinal,
    outOfOrder: collected.outOfOrder,
    unexpected: collected.unexpected,
    clientErrors: collected.errors,
    latencies,
    deliverySeconds: (lastReceipt - firstPublish) / 1000,
    heapPerSubscription: (heapAfter.heapUsed - heapBefore.heapUsed) / subscribers,
    externalPerSubscription: (heapAfter.external - heapBefore.external) / subscribers,
    rssDelta: heapAfter.rss - rssBefore,
    hubStats,
    fetchesOnSubscribe,
    fetchesOnRounds,
    liveEvents: jobs.length * rounds,
    cpuMs: (cpu.user + cpu.system) / 1000,
    busyMs,
    loopDelayMs: { p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 },
    clock,
    leftOver,
  };
}

progress(`${subscribers} subscribers on ${jobCount} jobs of ${users} users, ${rounds} rounds every ${intervalMs} ms${spread ? "" : " (burst)"}`);
const stack = await startBenchStack({ users, jobs: jobCount, perUser: subscribers, perConnection, progress });
let outcome: Outcome | null = null;
let clients: Clients | null = null;
// Ctrl-C still drops the database and stops the nats-server (close() runs its steps once).
process.once('SIGINT', () => {
  progress('interrupted, cleaning up');
  void Promise.resolve(clients?.worker.terminate())
    .then(() => stack.close())
    .finally(() => process.exit(130));
});
try {
  const rssBefore = (await settledMemory()).rss;
  clients = startClients(
    {
      url: stack.app.gatewayUrl.replace(/^http/, 'ws'),
      query: clientOperation('NarrationProgress'),
      // Subscriber n follows job n mod J: N/J identical subscriptions per job, one group each.
      subscriptions: Array.from({ length: subscribers }, (_, n) => ({ job: n % jobCount, jobId: stack.jobs[n % jobCount]!.id, token: stack.jobs[n % jobCount]!.token })),
      perConnection,
      connectConcurrency,
      rounds,
    },
    (subscribed) => progress(`subscribed ${subscribed}/${subscribers}`),
  );
  outcome = await run(stack, clients, rssBefore);
} catch (error) {
  console.error(`bench:subscriptions: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
} finally {
  await clients?.worker.terminate();
  progress('cleaning up');
  await stack.close();
}
if (!outcome) process.exit(1);
const problems = printReport(outcome);
if (problems.length) fail(`correctness check failed:\n  ${problems.join('\n  ')}`);
