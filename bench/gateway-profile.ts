/**
 * Reads a V8 CPU profile (node --cpu-prof) of our gateway under load and says where the time
 * went: self time by package (node_modules/<package>, our folders, Node's internals), the
 * functions with the most self time, and the inclusive share of the suspects one would change
 * (a sample counts for a suspect when one of its frames matches, once per sample).
 *
 *   node --import tsx bench/gateway-profile.ts <file.cpuprofile>   (the whole profile; the bench prints the measured run's window)
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/**
 * Frames that mark a cost one could remove or move: the levers the report ranks. Each is
 * matched on the code that does the work (a package, a function), never on a wrapper that has
 * the whole request beneath it (our tracing's inSpan, the HTTP handler).
 */
const SUSPECTS: { name: string; match: (fn: string, url: string) => boolean; wrapper?: true }[] = [
  { name: 'HTTP client: undici (global fetch), its streams and AbortSignals', match: (fn, url) => url.startsWith('node:internal/deps/undici') || (url.startsWith('node:internal/webstreams') ) || (url === 'node:internal/abort_controller') },
  { name: 'RemoteGraphQLDataSource + our guarded fetcher (inclusive: with the fetch)', match: (_, url) => url.includes('RemoteGraphQLDataSource') || url.endsWith('gateway/subgraph-source.ts') || url.endsWith('gateway/circuit-breaker.ts') },
  { name: "@apollo/gateway's plan execution and result shaping", match: (_, url) => url.includes('@apollo/gateway/dist/executeQueryPlan') || url.includes('@apollo/gateway/dist/resultShaping') || url.includes('@apollo/gateway/dist/dataRewrites') },
  { name: 'query planning (@apollo/query-planner)', match: (_, url) => url.includes('@apollo/query-planner') },
  { name: '@apollo/federation-internals (operations, selection sets)', match: (_, url) => url.includes('@apollo/federation-internals') },
  { name: 'Apollo Server request pipeline', match: (_, url) => url.includes('@apollo/server') },
  { name: 'graphql-js (parse, validate, execute)', match: (_, url) => /\/node_modules\/graphql\//.test(url) },
  { name: 'JSON.parse / JSON.stringify', match: (fn, url) => (!url && (fn === 'parse' || fn === 'stringify')) || fn === 'parseJSONFromBytes' || fn === 'prettyJSONStringify' },
  { name: 'signing (signCaller: HMAC, SHA-256, base64url)', match: (fn, url) => url.endsWith('platform/internal-auth.ts') || (url === 'node:internal/crypto/hash') },
  { name: 'access log and pino', match: (_, url) => url.endsWith('gateway/access-log.ts') || url.includes('/node_modules/pino') || url.includes('/node_modules/sonic-boom') || url.includes('/node_modules/fast-redact') },
  { name: 'prom-client metrics', match: (_, url) => url.includes('/node_modules/prom-client') || url.endsWith('telemetry/metrics.ts') },
  // Its context.with() has the whole execution beneath it: only its self time is its own.
  { name: 'OpenTelemetry (API, no SDK without a collector)', match: (_, url) => url.includes('@opentelemetry'), wrapper: true },
  { name: 'node:http server and sockets (incl. writev)', match: (fn, url) => url.startsWith('node:_http') || url.startsWith('node:http') || url === 'node:net' || url === 'node:internal/stream_base_commons' || fn === 'writev' || fn === 'writeUtf8String' },
  { name: 'garbage collector', match: (fn) => fn === '(garbage collector)' },
  // Hive Gateway's own parts, for a profile of it.
  { name: "Hive's HTTP client (@whatwg-node/node-fetch on node:http)", match: (_, url) => url.includes('@whatwg-node/node-fetch') },
  { name: "Hive's planning, delegation and merging (@graphql-tools, @graphql-mesh)", match: (_, url) => url.includes('/node_modules/@graphql-tools/') || url.includes('/node_modules/@graphql-mesh/') },
  { name: "Hive's server (graphql-yoga, @whatwg-node/server, envelop)", match: (_, url) => url.includes('/node_modules/graphql-yoga') || url.includes('@whatwg-node/server') || url.includes('@envelop/') },
];

export interface ProfileSummary {
  totalMs: number;
  /** Time the thread did nothing (waiting for I/O). */
  idleMs: number;
  byPackage: { name: string; ms: number }[];
  topFunctions: { name: string; where: string; ms: number }[];
  /** Self: time in the suspect's own frames; inclusive: in them and everything they called. */
  suspects: { name: string; selfMs: number; inclusiveMs: number | null }[];
}

/** Which samples to count: those between these many ms before the profile's end (a run near its end). */
export interface Window {
  fromEndMs: number;
  toEndMs: number;
}

export function summarize(profile: CpuProfile, window?: Window): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const selfUs = new Map<number, number>();
  let at = profile.startTime;
  const from = window ? profile.endTime - window.fromEndMs * 1000 : -Infinity;
  const to = window ? profile.endTime - window.toEndMs * 1000 : Infinity;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    at += us;
    if (at < from || at > to) return;
    selfUs.set(id, (selfUs.get(id) ?? 0) + us);
  });
  // Inclusive: each distinct leaf's stack walked once, weighted by the leaf's self time.
  const inclusiveUs = new Map<string, number>();
  const suspectSelfUs = new Map<string, number>();
  for (const [leaf, us] of selfUs) {
    const matched = new Set<string>();
    for (let id: number | undefined = leaf; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id)!.callFrame;
      for (const suspect of SUSPECTS) {
        if (!suspect.match(frame.functionName, frame.url)) continue;
        matched.add(suspect.name);
        if (id === leaf) suspectSelfUs.set(suspect.name, (suspectSelfUs.get(suspect.name) ?? 0) + us);
      }
    }
    for (const name of matched) inclusiveUs.set(name, (inclusiveUs.get(name) ?? 0) + us);
  }

  let totalUs = 0;
  let idleUs = 0;
  const packages = new Map<string, number>();
  const functions = new Map<string, { name: string; where: string; us: number }>();
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame;
    totalUs += us;
    if (frame.functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    const pkg = packageOf(frame.url, frame.functionName);
    packages.set(pkg, (packages.get(pkg) ?? 0) + us);
    const where = frame.url ? `${shortUrl(frame.url)}:${frame.lineNumber + 1}` : '(native)';
    const key = `${frame.functionName}@${where}`;
    const entry = functions.get(key) ?? { name: frame.functionName || '(anonymous)', where, us: 0 };
    entry.us += us;
    functions.set(key, entry);
  }
  const ms = (us: number) => Math.round(us / 100) / 10;
  return {
    totalMs: ms(totalUs),
    idleMs: ms(idleUs),
    byPackage: [...packages].map(([name, us]) => ({ name, ms: ms(us) })).sort((a, b) => b.ms - a.ms),
    topFunctions: [...functions.values()].sort((a, b) => b.us - a.us).slice(0, 25).map((f) => ({ name: f.name, where: f.where, ms: ms(f.us) })),
    suspects: SUSPECTS.map((s) => ({ name: s.name, selfMs: ms(suspectSelfUs.get(s.name) ?? 0), inclusiveMs: s.wrapper ? null : ms(inclusiveUs.get(s.name) ?? 0) })).sort(
      (a, b) => (b.inclusiveMs ?? b.selfMs) - (a.inclusiveMs ?? a.selfMs),
    ),
  };
}

/**
 * `cpuMsPerRequest` (the process's CPU time per response, from /proc) turns shares into µs per
 * request: the profile's own clock counts time the thread was runnable but not running as well
 * (it samples wall time), so on a busy machine its milliseconds overstate the CPU.
 */
export function printSummary(summary: ProfileSummary, measured?: { gateway: string; cpuMsPerRequest: number }): void {
  const busy = summary.totalMs - summary.idleMs;
  const pct = (ms: number) => `${((100 * ms) / busy).toFixed(1).padStart(5)}%`;
  const perRequest = (ms: number) => (measured ? `${((1000 * measured.cpuMsPerRequest * ms) / busy).toFixed(0).padStart(6)} µs/req` : '');
  console.log(
    `\nCPU profile of ${measured?.gateway ?? 'the'} gateway: ${summary.totalMs} ms sampled, ${busy.toFixed(0)} ms not idle; shares are of that${measured ? `, µs/req are shares of the ${measured.cpuMsPerRequest.toFixed(2)} ms of CPU per request measured` : ''}`,
  );
  console.log('\nself time by package:');
  for (const p of summary.byPackage.slice(0, 18)) console.log(`  ${pct(p.ms)} ${p.ms.toFixed(0).padStart(7)} ms ${perRequest(p.ms)}  ${p.name}`);
  console.log('\nfunctions with the most self time:');
  for (const f of summary.topFunctions) console.log(`  ${pct(f.ms)} ${f.ms.toFixed(0).padStart(7)} ms  ${f.name}  ${f.where}`);
  console.log('\nsuspects: self time (their own frames) and inclusive time (with what they call; overlapping):');
  for (const s of summary.suspects) {
    const inclusive = s.inclusiveMs === null ? '     -'.padEnd(6 + (measured ? 15 : 0)) : `${pct(s.inclusiveMs)} ${perRequest(s.inclusiveMs)}`;
    console.log(`  self ${pct(s.selfMs)} ${perRequest(s.selfMs)}   inclusive ${inclusive}   ${s.name}`);
  }
}

function packageOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native / V8 builtins)';
  if (url.startsWith('node:internal/deps/undici')) return 'undici (Node\'s fetch)';
  if (url.startsWith('node:internal/')) return `node:internal/${url.slice('node:internal/'.length).split('/')[0]}`;
  if (url.startsWith('node:')) return url;
  const modules = url.lastIndexOf('/node_modules/');
  if (modules >= 0) {
    const [scope, name] = url.slice(modules + 14).split('/');
    return scope!.startsWith('@') ? `${scope}/${name}` : scope!;
  }
  const ours = url.match(/\/(gateway|platform|subgraphs|scripts|bench)\/(.+)$/);
  return ours ? `ours: ${ours[1]}/${ours[2]}` : shortUrl(url);
}

function shortUrl(url: string): string {
  const modules = url.lastIndexOf('/node_modules/');
  if (modules >= 0) return url.slice(modules + 14);
  const ours = url.match(/\/((gateway|platform|subgraphs|scripts|bench)\/.+)$/);
  return ours ? ours[1]! : url;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node --import tsx bench/gateway-profile.ts <file.cpuprofile>');
    process.exit(2);
  }
  printSummary(summarize(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile));
}
