/** The subscriptions bench's table (stdout) and its correctness verdict. */

/** The issue's target: 1,000 subscribers with p99 publish-to-client latency under 250 ms. */
export const TARGET = { subscribers: 1000, p99Ms: 250 };

export interface Outcome {
  subscribers: number;
  connections: number;
  jobs: number;
  users: number;
  rounds: number;
  intervalMs: number;
  spread: boolean;
  subscribeMs: number;
  roundsMs: number;
  /** Every subscriber: the state when subscribing, then one delivery per round. */
  expected: number;
  received: number;
  /** Rounds not delivered: coalesced by the hub, or lost (then withoutFinal > 0 too). */
  skipped: number;
  withoutFinal: number;
  outOfOrder: number;
  unexpected: number;
  clientErrors: string[];
  /** Publish-to-client latency of every delivery of a round, ms. */
  latencies: number[];
  /** From the first publish to the last delivery. */
  deliverySeconds: number;
  heapPerSubscription: number;
  externalPerSubscription: number;
  rssDelta: number;
  hubStats: { groups: number; subjects: number; subscribers: number };
  fetchesOnSubscribe: number;
  fetchesOnRounds: number;
  liveEvents: number;
  cpuMs: number;
  /** From the first round to the last delivery collected. */
  busyMs: number;
  loopDelayMs: { p99: number; max: number };
  clock: { offsetMs: number; rttMs: number };
  /** Subscriptions, groups or bus subscriptions still open after every client left. */
  leftOver: boolean;
}

/** Prints the table; returns what failed the correctness checks (nothing: all good). */
export function printReport(o: Outcome): string[] {
  const sorted = [...o.latencies].sort((a, b) => a - b);
  const [p50, p95, p99, max] = [0.5, 0.95, 0.99, 1].map((p) => percentile(sorted, p));
  const delivered = o.latencies.length;
  const kib = (bytes: number) => `${(bytes / 1024).toFixed(2)} KiB`;
  const rows: [string, string][] = [
    ['subscribers', `${o.subscribers} on ${o.connections} connections (${(o.subscribers / o.connections).toFixed(0)} per connection)`],
    ['jobs', `${o.jobs} of ${o.users} users, ${(o.subscribers / o.jobs).toFixed(1)} subscribers per job`],
    ['rounds', `${o.rounds} every ${o.intervalMs} ms, ${o.spread ? 'jobs spread over the interval' : 'all jobs at once'} (took ${(o.roundsMs / 1000).toFixed(2)} s)`],
    ['live events offered', `${o.liveEvents} = ${((o.jobs * 1000) / o.intervalMs).toFixed(1)}/s`],
    ['subscribing', `${(o.subscribeMs / 1000).toFixed(2)} s for all`],
    ['deliveries', `${o.received} of ${o.expected} expected (${o.subscribers} initial states + ${o.subscribers} x ${o.rounds} rounds)`],
    ['rounds skipped', `${o.skipped} (coalesced by the hub), ${o.withoutFinal} subscribers without the final state, ${o.outOfOrder} out of order`],
    ['delivered events/s', `${(delivered / o.deliverySeconds).toFixed(0)} (${delivered} round deliveries in ${o.deliverySeconds.toFixed(2)} s)`],
    ['latency publish -> client', `p50 ${p50!.toFixed(1)} ms, p95 ${p95!.toFixed(1)} ms, p99 ${p99!.toFixed(1)} ms, max ${max!.toFixed(1)} ms`],
    ['gateway heap / subscription', `${kib(o.heapPerSubscription)} (+ ${kib(o.externalPerSubscription)} off-heap), after GC, clients excluded`],
    ['process RSS delta', `${(o.rssDelta / 1048576).toFixed(1)} MiB, ${kib(o.rssDelta / o.subscribers)} / subscription, INCLUDING the clients' thread`],
    ['hub after subscribing', `${o.hubStats.groups} groups, ${o.hubStats.subjects} bus subjects, ${o.hubStats.subscribers} subscribers`],
    ['hub fetches', `${o.fetchesOnSubscribe} while subscribing (${o.jobs} groups); ${o.fetchesOnRounds} for ${o.liveEvents} live events (J x R = ${o.jobs} x ${o.rounds})`],
    ['process CPU in rounds', `${(o.cpuMs / 1000).toFixed(2)} s in ${(o.busyMs / 1000).toFixed(2)} s of rounds and deliveries (all threads: gateway, subgraphs, clients)`],
    ['gateway event loop delay', `p99 ${o.loopDelayMs.p99.toFixed(1)} ms, max ${o.loopDelayMs.max.toFixed(1)} ms (main thread, during rounds)`],
    ['thread clocks', `clients - main ${o.clock.offsetMs.toFixed(2)} ms (+/- ${(o.clock.rttMs / 2).toFixed(2)} ms)`],
    ['after the clients left', o.leftOver ? 'subscriptions LEFT OPEN on the server' : 'no subscription, group or bus subscription left'],
  ];
  const target =
    o.subscribers < TARGET.subscribers
      ? `not measured (fewer than ${TARGET.subscribers} subscribers)`
      : p99! < TARGET.p99Ms && !o.skipped
        ? `held: p99 ${p99!.toFixed(1)} ms < ${TARGET.p99Ms} ms at ${o.subscribers} subscribers, every round delivered`
        : `MISSED: p99 ${p99!.toFixed(1)} ms (target < ${TARGET.p99Ms} ms)${o.skipped ? `, ${o.skipped} rounds skipped` : ''} at ${o.subscribers} subscribers`;
  rows.push([`target (p99 < ${TARGET.p99Ms} ms at ${TARGET.subscribers})`, target]);

  const width = Math.max(...rows.map(([name]) => name.length));
  console.log(`\n${'measure'.padEnd(width)} | value`);
  console.log(`${'-'.repeat(width)}-|-${'-'.repeat(40)}`);
  for (const [name, value] of rows) console.log(`${name.padEnd(width)} | ${value}`);

  const problems: string[] = [];
  if (o.withoutFinal) problems.push(`${o.withoutFinal} subscribers never got the final state`);
  if (o.outOfOrder) problems.push(`${o.outOfOrder} deliveries of a state older than one delivered before`);
  if (o.unexpected) problems.push(`${o.unexpected} deliveries that no round published (or an early completion)`);
  if (o.clientErrors.length) problems.push(`client errors: ${o.clientErrors.join('; ')}`);
  if (o.leftOver) problems.push('subscriptions left open on the server after every client left');
  return problems;
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}
