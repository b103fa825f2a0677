/**
 * Gateway bench: the same supergraph and the same subgraph processes behind our gateway and
 * behind Hive Gateway, in one run, driven with the same operations at a fixed concurrency from
 * a load generator of its own (bench/gateway-load.ts, autocannon). Prints requests/s, p50 and
 * p99 per operation and gateway, the ratio ours/Hive, and our gateway's overhead over asking the
 * subgraph directly for a single-subgraph operation.
 *
 *   npm run bench:gateway                        # 4 operations, 2 rounds of ours and Hive in turn, 8 s each after a 1 s warm-up
 *   npm run bench:gateway -- --smoke             # 1 s per run, 1 round, 8 connections: does it work end to end
 *   npm run bench:gateway -- --ops deep,story --rounds 3 --duration 10 --connections 16
 *   npm run bench:gateway -- --dedupe off        # neither gateway shares identical in-flight subgraph calls
 *   npm run bench:gateway -- --profile deep      # our gateway alone under one operation, with a CPU profile
 *   npm run bench:gateway -- --profile deep --profile-gateway both   # ours, then Hive, the same way
 *   npm run bench:gateway -- --keep-logs         # leave every process's log in the run's folder
 *
 * Both gateways share an identical subgraph request that is already in flight among all who ask
 * for it, by default (Hive: @graphql-tools/executor-http; ours: SUBGRAPH_DEDUPE). The bench sends
 * the same operation from every connection, so that sharing does much of the work: --dedupe off
 * turns it off in both, to compare the rest.
 *
 * Sets up everything itself (bench/gateway-stack.ts): a fresh database on DATABASE_URL's server
 * (default postgres://postgres@127.0.0.1:5432/postgres) with a role per subgraph, dropped at the
 * end; the NATS at NATS_URL (default nats://127.0.0.1:4222) with a stream and subjects of the
 * run's own, deleted at the end; each subgraph, our gateway and Hive Gateway as processes of
 * their own. Seeds through our gateway (bench/gateway-seed.ts), then checks a response of every
 * operation from every target (the shape, no errors, both gateways' data equal) before timing
 * anything, and every response while timing. Exits 1 if a check fails or any response was bad.
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { copyFileSync, readdirSync, readFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { ANONYMOUS, signCaller } from '../platform/internal-auth.js';
import type { LoadRequest, LoadResult } from './gateway-load.js';
import { benchOperations, DEEP_NESTED, depthOf, type BenchOperation, type OperationKey } from './gateway-operations.js';
import { printSummary, summarize } from './gateway-profile.js';
import { printTable, rowsOf, type RunSample, type Target } from './gateway-report.js';
import { seed } from './gateway-seed.js';
import { startGatewayStack, type GatewayStack } from './gateway-stack.js';

const ALL_OPS: OperationKey[] = ['feed', 'story', 'deep', 'feed-story'];

const { values: flags } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    ops: { type: 'string', default: ALL_OPS.join(',') },
    rounds: { type: 'string', default: '2' },
    duration: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '1' },
    connections: { type: 'string' },
    members: { type: 'string', default: '12' },
    'feed-size': { type: 'string', default: '20' },
    profile: { type: 'string' },
    'profile-gateway': { type: 'string', default: 'ours' },
    dedupe: { type: 'string', default: 'on' },
    'keep-logs': { type: 'boolean', default: false },
  },
});

const t0 = Date.now();
function progress(event: string, fields: Record<string, unknown> = {}): void {
  // The 1-minute load average says how busy the machine was besides: other work skews a run.
  const pairs = Object.entries({ ...fields, load: loadavg()[0]! }).map(([k, v]) => `${k}=${typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(2) : String(v)}`);
  console.log(`bench:gateway +${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s ${event}${pairs.length ? ' ' + pairs.join(' ') : ''}`);
}

function fail(message: string): never {
  console.error(`bench:gateway: ${message}`);
  process.exit(1);
}

function count(flag: 'rounds' | 'duration' | 'warmup' | 'connections' | 'members' | 'feed-size', min: number): number {
  const value = Number(flags[flag]);
  if (!Number.isInteger(value) || value < min) fail(`--${flag} must be an integer >= ${min}, got '${flags[flag]}'`);
  return value;
}

const smoke = flags.smoke;
const rounds = smoke ? 1 : count('rounds', 1);
const durationSeconds = smoke ? 1 : count('duration', 1);
const warmupSeconds = smoke ? 1 : count('warmup', 0);
// The smoke run's second is too short for the deep operation at 32 connections (each answer
// waits behind 31 others): it uses 8 unless told otherwise.
const connections = flags.connections === undefined ? (smoke ? 8 : 32) : count('connections', 1);
const members = count('members', 7);
const feedSize = count('feed-size', 1);
if (feedSize > members * 3) fail(`--feed-size ${feedSize} is more than the ${members * 3} stories ${members} members publish`);
const ops = flags.ops.split(',').map((s) => s.trim()) as OperationKey[];
for (const op of ops) if (!ALL_OPS.includes(op)) fail(`--ops: unknown operation '${op}' (one of ${ALL_OPS.join(', ')})`);
const profileOp = flags.profile as OperationKey | undefined;
if (profileOp !== undefined && !ALL_OPS.includes(profileOp)) fail(`--profile: unknown operation '${profileOp}' (one of ${ALL_OPS.join(', ')})`);
const profiled = ({ ours: ['ours'], hive: ['hive'], both: ['ours', 'hive'] } as const)[flags['profile-gateway'] as 'ours'];
if (!profiled) fail(`--profile-gateway is ours, hive or both, got '${flags['profile-gateway']}'`);
if (!['on', 'off'].includes(flags.dedupe)) fail(`--dedupe is on or off, got '${flags.dedupe}'`);

// The apps' operations come from a module that loads every subgraph's schema module (seconds):
// loaded while the processes start, on the other core.
const clientOperations = import('../scripts/client-operations.js');
const deepDepth = depthOf(DEEP_NESTED);

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
let stack: GatewayStack | null = null;
let loader: ChildProcess | null = null;
let nextId = 0;
const pending = new Map<number, { resolve: (r: LoadResult) => void; reject: (e: Error) => void }>();
let stopping: Promise<void> | null = null;
const cleanup = () =>
  (stopping ??= (async () => {
    loader?.kill();
    await stack?.close();
  })());
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void cleanup().finally(() => process.exit(130)));
// A throw outside the main flow (an event handler) must not leave the database and processes behind.
process.once('uncaughtException', (error) => {
  console.error(`bench:gateway: ${error.stack ?? String(error)}`);
  void cleanup().finally(() => process.exit(1));
});

let exitCode = 0;
try {
  stack = await startGatewayStack({
    serverUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    natsUrl: process.env.NATS_URL ?? 'nats://127.0.0.1:4222',
    oursEnv: {
      // One client address sends everything: per-address rate limits would refuse the load.
      RATE_LIMITS: 'off',
      SUBGRAPH_DEDUPE: flags.dedupe,
      // The deep query nests deeper than the default limit (12); the check costs the same at any limit.
      LIMIT_MAX_DEPTH: String(Math.max(12, deepDepth)),
    },
    hiveEnv: { HIVE_DEDUPE: flags.dedupe },
    keepDir: flags['keep-logs'],
    progress,
  });
  await clientOperations;
  const seeded = await seed(stack.ours.url, members, progress);
  const operations = await benchOperations({ storyId: seeded.storyId, feedSize });
  loader = fork(new URL('./gateway-load.ts', import.meta.url), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });

  if (profileOp) {
    for (const gateway of profiled) await profileGateway(stack, operations[profileOp], gateway);
  } else {
    exitCode = await compare(stack, operations);
  }
} catch (error) {
  console.error(`bench:gateway: ${error instanceof Error ? error.stack : String(error)}`);
  exitCode = 1;
} finally {
  progress('cleanup');
  await cleanup();
}
process.exit(exitCode);

/** Every operation, round after round: ours and Hive in turn (ours first in odd rounds, Hive in even ones), then the subgraph directly. */
async function compare(stack: GatewayStack, operations: Record<OperationKey, BenchOperation>): Promise<number> {
  const expected = await validateAll(stack, ops.map((op) => operations[op]));
  const samples: RunSample[] = [];
  for (const op of ops) {
    for (let round = 1; round <= rounds; round++) {
      // Whoever runs second finds the subgraphs warmer (caches, JIT): each goes first as often.
      const gateways: Target[] = round % 2 === 1 ? ['ours', 'hive'] : ['hive', 'ours'];
      const targets: Target[] = operations[op].direct ? [...gateways, 'direct'] : gateways;
      for (const target of targets) {
        const sample = await timedRun(stack, operations[op], target, expected.get(`${op}|${target}`)!, round);
        samples.push(sample);
        const l = sample.load;
        progress('run', { op, gateway: target, round: `${round}/${rounds}`, 'req/s': Math.round(l.requestsPerSecond), p50: l.p50Ms, p99: l.p99Ms, bad: l.bad, 'subgraph-calls/req': Object.entries(sample.subgraphCallsBy).map(([name, calls]) => `${name}:${calls}`).join(',') });
      }
    }
  }
  const rows = rowsOf(samples);
  const machine = `${execFileSync('nproc').toString().trim()} cores, Node ${process.version}`;
  printTable(
    rows,
    Object.fromEntries(ops.map((op) => [op, operations[op].title])),
    `${connections} connections, pipelining 1, ${durationSeconds} s per run after a ${warmupSeconds} s warm-up, ${rounds} round(s) of ours and Hive in turn${ops.some((op) => operations[op].direct) ? ' (then direct)' : ''}: medians over the rounds; ${dataLine(stack)}; ${machine}; in-flight dedupe ${flags.dedupe} in both`,
    'hive',
  );
  const bad = rows.filter((r) => r.bad > 0 || r.unanswered);
  if (bad.length) console.log(`\nbad responses or none in ${bad.map((r) => `${r.op}/${r.target}`).join(', ')}: those rows are failures, not speeds`);
  return bad.length ? 1 : 0;
}

function dataLine(stack: GatewayStack): string {
  return `${members} members, ${members * 3} published stories, ${members} narrations; logs in ${stack.dir}${flags['keep-logs'] ? '' : ' (removed at the end)'}`;
}

/** A gateway alone, restarted with --cpu-prof after seeding, under one operation; then the profile's summary. */
async function profileGateway(stack: GatewayStack, operation: BenchOperation, gateway: 'ours' | 'hive'): Promise<void> {
  const dir = join(stack.dir, `profile-${gateway}`);
  await stack.restart(gateway, ['--cpu-prof', `--cpu-prof-dir=${dir}`]);
  progress('profiling', { op: operation.key, gateway, dir });
  const expected = await validate(stack, operation, gateway);
  const sample = await timedRun(stack, operation, gateway, expected.bytes, 1);
  const l = sample.load;
  progress('run', { op: operation.key, gateway, 'req/s': Math.round(l.requestsPerSecond), p50: l.p50Ms, p99: l.p99Ms, bad: l.bad, 'gateway-cpu-ms/req': sample.gatewayCpuMs ?? 0 });
  await stack.processes.get(gateway)!.stop();
  // The profile ends as the process exits: the measured run is that long before its end
  // (shrunk by 0.2 s each side for the clocks' slack), which leaves out start-up and warm-up.
  const exitedAt = Date.now();
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no .cpuprofile in ${dir}`);
  const kept = join(tmpdir(), `storyloom-gateway-${gateway}-${operation.key}-${Date.now()}.cpuprofile`);
  copyFileSync(join(dir, file), kept);
  const window = { fromEndMs: exitedAt - sample.startedAt - 200, toEndMs: exitedAt - sample.endedAt + 200 };
  printSummary(summarize(JSON.parse(readFileSync(kept, 'utf8')), window), { gateway, cpuMsPerRequest: sample.gatewayCpuMs! });
  console.log(`\nthe profile (open in Chrome DevTools or speedscope): ${kept}`);
  console.log(`the summary covers the measured ${durationSeconds} s at ${connections} connections (${l.ok} responses), not start-up or warm-up; the file has the process's whole life`);
}

/** One warm-up (dropped) and one measured run, with the subgraphs' calls and every process's CPU read around the measured one. */
async function timedRun(stack: GatewayStack, operation: BenchOperation, target: Target, expectedBytes: number, round: number): Promise<RunSample> {
  const request = loadRequest(stack, operation, target, expectedBytes);
  if (warmupSeconds > 0) await load({ ...request, durationSeconds: warmupSeconds });
  await settle(stack);
  const gateway = target === 'direct' ? null : stack.processes.get(target)!.child.pid!;
  const subgraphPids = Object.keys(stack.subgraphUrls).map((name) => stack.processes.get(name)!.child.pid!);
  // Metrics are scraped outside the CPU window: rendering them is no part of the operation.
  const callsBefore = await subgraphCalls(stack);
  const cpuBefore = { gateway: gateway ? cpuMs(gateway) : 0, subgraphs: sum(subgraphPids.map(cpuMs)) };
  const startedAt = Date.now();
  const result = await load(request);
  const endedAt = Date.now();
  // autocannon stops with a request in flight on every connection: the servers still answer
  // them (into closed sockets). They are waited for and counted as served, so that the calls
  // and CPU they cost are not put on the responses counted.
  await settle(stack);
  const cpuAfter = { gateway: gateway ? cpuMs(gateway) : 0, subgraphs: sum(subgraphPids.map(cpuMs)) };
  const callsAfter = await subgraphCalls(stack);
  const responses = Math.max(1, result.ok + result.bad + connections);
  return {
    op: operation.key,
    target,
    round,
    load: result,
    subgraphCalls: sum(Object.keys(callsAfter).map((name) => callsAfter[name]! - callsBefore[name]!)) / responses,
    subgraphCallsBy: Object.fromEntries(
      Object.keys(callsAfter)
        .map((name) => [name, Math.round((100 * (callsAfter[name]! - callsBefore[name]!)) / responses) / 100] as const)
        .filter(([, calls]) => calls > 0),
    ),
    gatewayCpuMs: gateway ? (cpuAfter.gateway - cpuBefore.gateway) / responses : null,
    subgraphsCpuMs: (cpuAfter.subgraphs - cpuBefore.subgraphs) / responses,
    startedAt,
    endedAt,
  };
}

/**
 * Until the requests left in flight at a run's end have been answered: the bench's processes
 * together used under 10 ms of CPU in the last 100 ms (or 10 s have passed).
 */
async function settle(stack: GatewayStack): Promise<void> {
  const pids = [...stack.processes.values()].filter((p) => p.child.exitCode === null && p.child.signalCode === null).map((p) => p.child.pid!);
  const deadline = Date.now() + 10_000;
  let before = sum(pids.map(cpuMs));
  while (Date.now() < deadline) {
    await sleep(100);
    const now = sum(pids.map(cpuMs));
    if (now - before < 10) return;
    before = now;
  }
}

function loadRequest(stack: GatewayStack, operation: BenchOperation, target: Target, expectedBytes: number): LoadRequest {
  const body = JSON.stringify({ query: operation.query, variables: operation.variables });
  const base = { body, connections, durationSeconds, expectedBytes };
  if (target !== 'direct') return { ...base, url: stack[target].url };
  const subgraph = operation.direct!.subgraph;
  return { ...base, url: `${stack.subgraphUrls[subgraph]}/graphql`, sign: { internalSecret: stack.internalSecret, audience: subgraph } };
}

function load(request: LoadRequest): Promise<LoadResult> {
  if (!loader!.listenerCount('message')) {
    loader!.on('message', (message: { id: number; result?: LoadResult; error?: string }) => {
      const waiting = pending.get(message.id);
      pending.delete(message.id);
      if (message.error) waiting?.reject(new Error(`load generator: ${message.error}`));
      else waiting?.resolve(message.result!);
    });
    loader!.once('exit', (code) => {
      for (const waiting of pending.values()) waiting.reject(new Error(`the load generator exited with ${code}`));
    });
  }
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    loader!.send({ id, request });
  });
}

/** One response of every operation from every target: the right shape, no errors, the two gateways' data equal. */
async function validateAll(stack: GatewayStack, operations: BenchOperation[]): Promise<Map<string, number>> {
  const expected = new Map<string, number>();
  for (const operation of operations) {
    const answers: Partial<Record<Target, { bytes: number; data: unknown }>> = {};
    for (const target of (operation.direct ? ['ours', 'hive', 'direct'] : ['ours', 'hive']) as Target[]) {
      answers[target] = await validate(stack, operation, target);
      expected.set(`${operation.key}|${target}`, answers[target]!.bytes);
    }
    if (!isDeepStrictEqual(comparable(answers.ours!.data), comparable(answers.hive!.data))) {
      throw new Error(`${operation.key}: our gateway and Hive answered different data:\nours ${JSON.stringify(answers.ours!.data).slice(0, 600)}\nhive ${JSON.stringify(answers.hive!.data).slice(0, 600)}`);
    }
    progress('checked', { op: operation.key, 'bytes-ours': answers.ours!.bytes, 'bytes-hive': answers.hive!.bytes, ...(answers.direct ? { 'bytes-direct': answers.direct.bytes } : {}), 'same-data': true });
  }
  return expected;
}

async function validate(stack: GatewayStack, operation: BenchOperation, target: Target): Promise<{ bytes: number; data: unknown }> {
  const request = loadRequest(stack, operation, target, 0);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (request.sign) {
    const parsed = JSON.parse(request.body) as { query: string; variables: unknown };
    Object.assign(headers, signCaller(request.sign.internalSecret, { audience: request.sign.audience, caller: ANONYMOUS, correlationId: randomUUID(), operation: parsed }));
  }
  const response = await fetch(request.url, { method: 'POST', headers, body: request.body });
  const text = await response.text();
  let body: { data?: unknown; errors?: unknown[] };
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`${operation.key} via ${target}: not JSON (${response.status}): ${text.slice(0, 300)}`);
  }
  if (response.status !== 200 || body.errors?.length || !body.data) throw new Error(`${operation.key} via ${target}: ${response.status} ${text.slice(0, 600)}`);
  const problem = operation.check(body.data);
  if (problem) throw new Error(`${operation.key} via ${target}: ${problem}`);
  return { bytes: text.length, data: body.data };
}

/** Data as both gateways should give it: a signed audio URL differs by its signature and expiry only. */
function comparable(data: unknown): unknown {
  return JSON.parse(JSON.stringify(data, (key, value) => (key === 'audioUrl' && typeof value === 'string' ? value.split('?')[0] : value)));
}

/** GraphQL operations each subgraph served so far, from its own metrics. */
async function subgraphCalls(stack: GatewayStack): Promise<Record<string, number>> {
  const counts = await Promise.all(
    Object.entries(stack.subgraphUrls).map(async ([name, url]) => {
      const text = await (await fetch(`${url}/metrics`)).text();
      return [name, sum(text.split('\n').filter((line) => line.startsWith('storyloom_graphql_requests_total{')).map((line) => Number(line.slice(line.lastIndexOf(' ') + 1))))] as const;
    }),
  );
  return Object.fromEntries(counts);
}

/** A process's CPU time so far (user + system), in ms, from /proc. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are the 14th and 15th fields; `fields` starts at the 3rd.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}
