import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError } from '../platform/config.js';
import type { Logger } from '../platform/log.js';

export interface DiscoveredSubgraphs {
  /** Each subgraph's base URL (no trailing slash, no /graphql): `<url>/graphql`, `<url>/health`. */
  urls: Record<string, string>;
  /** Each subgraph's call timeout: SUBGRAPH_<NAME>_TIMEOUT_MS, else the default. */
  timeoutsMs: Record<string, number>;
}

/** The settings of one subgraph: `story` → SUBGRAPH_STORY_URL, `video-jobs` → SUBGRAPH_VIDEO_JOBS_URL. */
export function subgraphVariable(name: string, setting: 'URL' | 'TIMEOUT_MS'): string {
  return `SUBGRAPH_${name.toUpperCase().replace(/[^A-Z0-9]+/g, '_')}_${setting}`;
}

/**
 * Where the gateway finds each subgraph when they run apart (docker-compose, Kubernetes):
 * SUBGRAPH_<NAME>_URL for every name, and optionally SUBGRAPH_<NAME>_TIMEOUT_MS. Every
 * problem is collected so one failed start names them all.
 */
export function discoverSubgraphs(env: NodeJS.ProcessEnv, names: readonly string[], options: { defaultTimeoutMs: number }): DiscoveredSubgraphs {
  const problems: string[] = [];
  const urls: Record<string, string> = {};
  const timeoutsMs: Record<string, number> = {};
  for (const name of names) {
    const url = readUrl(env, subgraphVariable(name, 'URL'), problems);
    if (url) urls[name] = url;
    timeoutsMs[name] = readTimeout(env, subgraphVariable(name, 'TIMEOUT_MS'), options.defaultTimeoutMs, problems);
  }
  if (problems.length) throw new ConfigError(problems);
  return { urls, timeoutsMs };
}

function readUrl(env: NodeJS.ProcessEnv, variable: string, problems: string[]): string | null {
  const raw = env[variable]?.trim();
  if (!raw) {
    problems.push(`${variable}: not set (the subgraph's base URL, e.g. http://story:4001)`);
    return null;
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    problems.push(`${variable}: not a URL`);
    return null;
  }
  const base = `${url.origin}${url.pathname}`.replace(/\/+$/, '');
  if (url.protocol !== 'http:' && url.protocol !== 'https:') problems.push(`${variable}: must be an http:// or https:// URL`);
  else if (url.search || url.hash) problems.push(`${variable}: must not have a query or fragment`);
  // The gateway adds /graphql and /health itself; a URL that already ends in /graphql would be
  // called at /graphql/graphql and fail only at the first request.
  else if (/\/graphql$/i.test(base)) problems.push(`${variable}: give the base URL, without /graphql`);
  else if (url.username || url.password) problems.push(`${variable}: must not carry credentials`);
  else return base;
  return null;
}

function readTimeout(env: NodeJS.ProcessEnv, variable: string, fallback: number, problems: string[]): number {
  const raw = env[variable]?.trim();
  if (!raw) return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(value) || value < 1) {
    problems.push(`${variable}: must be a whole number of milliseconds, 1 or more`);
    return fallback;
  }
  return value;
}

export interface SubgraphHealth {
  up: boolean;
  /** Probes sent before it answered 200, or before the deadline. */
  attempts: number;
  /** When it first answered 200, in ms since the check began. */
  upAfterMs?: number;
  /** Why the last probe failed, when it is not up: `HTTP 503`, `timeout after 1000 ms`, `ECONNREFUSED`. */
  problem?: string;
}

export interface CheckOptions {
  /** The longest one probe may take. */
  timeoutMs: number;
  /** When to stop waiting for the ones still down, in ms from the start (a round under way finishes). */
  deadlineMs: number;
  /** The pause between rounds of probes (default 500). */
  intervalMs?: number;
  /** What is probed under each URL (default `/health`; `/ready` also waits for its database and NATS). */
  path?: string;
  logger: Logger;
  fetch?: typeof globalThis.fetch;
}

/**
 * Polls GET <url><path> (/health) of every subgraph until all answer 200 or the deadline passes. It
 * never throws for a subgraph that is down: the gateway starts anyway and answers with partial
 * data; whoever calls it decides from the result whether that is acceptable.
 */
export async function checkSubgraphs(urls: Record<string, string>, options: CheckOptions): Promise<Record<string, SubgraphHealth>> {
  const { logger } = options;
  const path = options.path ?? '/health';
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const health: Record<string, SubgraphHealth> = Object.fromEntries(Object.keys(urls).map((name) => [name, { up: false, attempts: 0 }]));
  const named = (up: boolean) => Object.keys(health).filter((name) => health[name]!.up === up);
  const problems = () => Object.fromEntries(named(false).map((name) => [name, health[name]!.problem]));

  // Each probe gets its full timeoutMs, even one that starts just before the deadline: a probe
  // cut to a few ms fails for want of time and would hide the real reason (ECONNREFUSED, a 503).
  // The check may so end up to one timeoutMs past the deadline.
  const probeOne = async (name: string): Promise<boolean> => {
    const entry = health[name]!;
    entry.attempts += 1;
    const problem = await probe(options.fetch ?? globalThis.fetch, `${urls[name]}${path}`, options.timeoutMs);
    if (problem) {
      entry.problem = problem;
      return false;
    }
    entry.up = true;
    entry.upAfterMs = elapsed();
    delete entry.problem;
    logger.info({ subgraph: name, attempts: entry.attempts, ms: entry.upAfterMs }, 'subgraph healthy');
    return true;
  };

  logger.info({ subgraphs: Object.keys(urls), path, deadlineMs: options.deadlineMs }, 'checking subgraphs');
  for (let round = 1; ; round++) {
    const cameUp = (await Promise.all(named(false).map(probeOne))).some(Boolean);
    if (!named(false).length) {
      logger.info({ subgraphs: named(true), ms: elapsed() }, 'all subgraphs healthy');
      return health;
    }
    if (elapsed() >= options.deadlineMs) {
      logger.warn({ up: named(true), down: problems(), ms: elapsed() }, 'subgraphs still down at the deadline: serving without them until they answer');
      return health;
    }
    // Progress on the first round and whenever one comes up; not on every poll of a long wait.
    if (round === 1 || cameUp) logger.info({ up: named(true), waitingFor: problems(), ms: elapsed() }, 'waiting for subgraphs');
    await sleep(Math.min(options.intervalMs ?? 500, options.deadlineMs - elapsed()));
  }
}

/** Null when the subgraph answered 200; otherwise why not. */
async function probe(fetchImpl: typeof globalThis.fetch, url: string, timeoutMs: number): Promise<string | null> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const response = await fetchImpl(url, { signal });
    // Drained so the connection goes back to the pool rather than waiting for the collector.
    await response.arrayBuffer().catch(() => undefined);
    return response.status === 200 ? null : `HTTP ${response.status}`;
  } catch (error) {
    if (signal.aborted) return `timeout after ${timeoutMs} ms`;
    return causeOf(error);
  }
}

// Node's fetch hides the reason (ECONNREFUSED, ENOTFOUND) in `cause`; "fetch failed" alone says nothing.
function causeOf(error: unknown): string {
  const cause = error instanceof Error ? (error.cause as { code?: string; message?: string } | undefined) : undefined;
  return cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
}
