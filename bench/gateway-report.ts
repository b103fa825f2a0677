/**
 * The gateway bench's table: per operation and target, the median over the rounds of each
 * measure, the bad responses summed; then ours/Hive ratios and our overhead over the subgraph
 * asked directly. A row with any bad response shows no speed: an error answered fast is no result.
 */
import type { LoadResult } from './gateway-load.js';
import type { OperationKey } from './gateway-operations.js';

export type Target = 'ours' | 'hive' | 'direct';

export interface RunSample {
  op: OperationKey;
  target: Target;
  round: number;
  load: LoadResult;
  /** Requests the subgraphs served per response, from their own metrics. */
  subgraphCalls: number;
  /** The same, by subgraph (those asked). */
  subgraphCallsBy: Record<string, number>;
  /** CPU time of the gateway's process per response (null when no gateway was in the path). */
  gatewayCpuMs: number | null;
  /** CPU time of all subgraph processes together per response. */
  subgraphsCpuMs: number;
  /** Wall-clock bounds of the measured run (Date.now()). */
  startedAt: number;
  endedAt: number;
}

export interface Row {
  op: OperationKey;
  target: Target;
  rounds: number;
  rps: number;
  p50: number;
  p99: number;
  bad: number;
  badSample: string | undefined;
  /** A round without a single answer within its duration: too slow to time at this concurrency. */
  unanswered: boolean;
  subgraphCalls: number;
  gatewayCpuMs: number | null;
  subgraphsCpuMs: number;
}

export function rowsOf(samples: RunSample[]): Row[] {
  const groups = new Map<string, RunSample[]>();
  for (const s of samples) groups.set(`${s.op}|${s.target}`, [...(groups.get(`${s.op}|${s.target}`) ?? []), s]);
  return [...groups.values()].map((group) => {
    const { op, target } = group[0]!;
    const gatewayCpu = group.map((s) => s.gatewayCpuMs).filter((v): v is number => v !== null);
    return {
      op,
      target,
      rounds: group.length,
      rps: median(group.map((s) => s.load.requestsPerSecond)),
      p50: median(group.map((s) => s.load.p50Ms)),
      p99: median(group.map((s) => s.load.p99Ms)),
      bad: group.reduce((sum, s) => sum + s.load.bad, 0),
      badSample: group.flatMap((s) => s.load.badSamples)[0],
      unanswered: group.some((s) => s.load.ok === 0),
      subgraphCalls: median(group.map((s) => s.subgraphCalls)),
      gatewayCpuMs: gatewayCpu.length ? median(gatewayCpu) : null,
      subgraphsCpuMs: median(group.map((s) => s.subgraphsCpuMs)),
    };
  });
}

export function printTable(rows: Row[], legend: Record<string, string>, header: string, hiveName: string): void {
  const names: Record<Target, string> = { ours: 'ours', hive: hiveName, direct: 'direct (subgraph)' };
  const head = ['operation', 'gateway', 'req/s', 'p50 ms', 'p99 ms', 'errors/non-2xx', 'subgraph calls/req', 'gateway CPU ms/req', 'subgraphs CPU ms/req'];
  const lines = rows.map((r) => {
    const failed = r.bad > 0 || r.unanswered;
    return [
      r.op,
      names[r.target],
      r.bad > 0 ? 'ERRORS' : r.unanswered ? 'NO ANSWER' : r.rps.toFixed(0),
      failed ? '-' : ms(r.p50),
      failed ? '-' : ms(r.p99),
      String(r.bad),
      r.subgraphCalls.toFixed(2),
      r.gatewayCpuMs === null ? '-' : r.gatewayCpuMs.toFixed(2),
      r.subgraphsCpuMs.toFixed(2),
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const format = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ');
  console.log(`\n${header}\n`);
  console.log(format(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('-|-'));
  for (const line of lines) console.log(format(line));

  console.log('\nours / hive (req/s above 1: ours serves more; p50 and p99 below 1: ours answers sooner):');
  for (const op of new Set(rows.map((r) => r.op))) {
    const ours = rows.find((r) => r.op === op && r.target === 'ours');
    const hive = rows.find((r) => r.op === op && r.target === 'hive');
    if (!ours || !hive) continue;
    if (ours.bad || hive.bad || ours.unanswered || hive.unanswered) {
      const why = (r: Row, name: string) => (r.bad ? ` ${name} had ${r.bad} bad responses (${r.badSample})` : r.unanswered ? ` ${name} answered nothing within a run` : '');
      console.log(`  ${op.padEnd(10)} no ratio:${why(ours, 'ours')}${why(hive, 'hive')}`);
      continue;
    }
    console.log(`  ${op.padEnd(10)} req/s ${(ours.rps / hive.rps).toFixed(2)}   p50 ${(ours.p50 / hive.p50).toFixed(2)}   p99 ${(ours.p99 / hive.p99).toFixed(2)}   gateway CPU/req ${ours.gatewayCpuMs !== null && hive.gatewayCpuMs ? (ours.gatewayCpuMs / hive.gatewayCpuMs).toFixed(2) : '-'}`);
  }

  for (const direct of rows.filter((r) => r.target === 'direct')) {
    console.log(`\noverhead over the subgraph asked directly (${direct.op}: the same query, signed, straight to it):`);
    if (direct.bad || direct.unanswered) {
      console.log(`  direct had ${direct.bad} bad responses (${direct.badSample ?? 'none answered'})`);
      continue;
    }
    for (const target of ['ours', 'hive'] as const) {
      const row = rows.find((r) => r.op === direct.op && r.target === target);
      if (!row || row.bad || row.unanswered) continue;
      console.log(
        `  ${target.padEnd(4)} p50 ${signed(row.p50 - direct.p50)} ms, p99 ${signed(row.p99 - direct.p99)} ms over direct (${direct.p50.toFixed(1)} / ${direct.p99.toFixed(1)} ms); req/s ${(row.rps / direct.rps).toFixed(2)} of direct's ${direct.rps.toFixed(0)}; gateway CPU ${row.gatewayCpuMs?.toFixed(2) ?? '-'} ms/req`,
      );
    }
  }

  console.log('\noperations:');
  for (const [op, title] of Object.entries(legend)) console.log(`  ${op.padEnd(10)} ${title}`);
}

/** No response within the run has no latency to show. */
const ms = (value: number) => (Number.isFinite(value) ? value.toFixed(1) : 'none');

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** +1.5 or -1.5: below direct when the gateway shares calls (dedupe) and the subgraph is the bottleneck. */
const signed = (ms: number) => `${ms < 0 ? '-' : '+'}${Math.abs(ms).toFixed(1)}`;
