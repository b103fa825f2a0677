/**
 * What the gateway bench runs: the distributed mode for real on this machine (a fresh database
 * with a role per subgraph, every subgraph as its own process), and in front of the same
 * subgraph processes two gateways, each in a process of its own: ours (scripts/start-gateway.ts)
 * and Hive Gateway (bench/gateway-hive.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { subgraphNames } from '../subgraphs/catalog.js';
import { deleteStreams, dropRoles, withUser } from '../test/support/distributed.js';
import { freePort } from '../test/support/net.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const READY_TIMEOUT_MS = 120_000;

export interface BenchProcess {
  name: string;
  child: ChildProcess;
  /** Where its stdout and stderr go: a file, so a chatty process never waits on this one's reading. */
  logPath: string;
  /** SIGTERM (the process drains and exits, writing its CPU profile if it has one), SIGKILL after 15 s. */
  stop(): Promise<void>;
}

export interface GatewayStack {
  /** Each subgraph's base URL (no /graphql), by name. */
  subgraphUrls: Record<string, string>;
  ours: { url: string; metricsUrl: string };
  hive: { url: string };
  internalSecret: string;
  /** The run's temporary folder: logs, blobs, the CPU profile. */
  dir: string;
  /** By role: each subgraph's name, `ours`, `hive`. */
  processes: Map<string, BenchProcess>;
  /** Stops a gateway and starts it again with these node flags (--cpu-prof, after seeding through ours). */
  restart(gateway: 'ours' | 'hive', nodeArgs: string[]): Promise<void>;
  close(): Promise<void>;
}

export interface StackOptions {
  /** An administrator on the PostgreSQL server; the bench creates and drops its own database there. */
  serverUrl: string;
  natsUrl: string;
  /** Settings for our gateway's process only. */
  oursEnv?: Record<string, string>;
  /** Settings for the Hive Gateway process only. */
  hiveEnv?: Record<string, string>;
  /** Leave the run's folder (every process's log) in place at the end. */
  keepDir?: boolean;
  progress(event: string, fields?: Record<string, unknown>): void;
}

export async function startGatewayStack(options: StackOptions): Promise<GatewayStack> {
  const suffix = randomBytes(4).toString('hex');
  // Undone newest first by close(), each step even if an earlier one failed; a second close()
  // (Ctrl-C during the first) waits for the first.
  const undo: { name: string; run: () => Promise<unknown> }[] = [];
  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= (async () => {
      for (const step of undo.reverse()) await step.run().catch((error: unknown) => console.error(`bench:gateway: cleanup '${step.name}' failed: ${String(error)}`));
    })());

  try {
    const dir = await mkdtemp(join(tmpdir(), 'storyloom-bench-gateway-'));
    if (!options.keepDir) undo.push({ name: 'remove the temporary folder', run: () => rm(dir, { recursive: true, force: true }) });

    const database = `storyloom_bench_gateway_${suffix}`;
    const databaseUrl = withDatabase(options.serverUrl, database);
    const roleUrls = Object.fromEntries(subgraphNames.map((name) => [name, withUser(databaseUrl, `sl_gwb_${suffix}_${name}`, randomBytes(12).toString('hex'))]));
    // The roles go after the database, which holds everything they own.
    undo.push({ name: 'drop the roles', run: () => dropRoles(options.serverUrl, Object.values(roleUrls).map((url) => decodeURIComponent(new URL(url).username))) });
    await adminQuery(options.serverUrl, `create database "${database}"`);
    undo.push({ name: 'drop the database', run: () => adminQuery(options.serverUrl, `drop database if exists "${database}" with (force)`) });

    const ports = Object.fromEntries(await Promise.all(subgraphNames.map(async (name) => [name, await freePort()] as const)));
    const [oursPort, adminPort, hivePort] = [await freePort(), await freePort(), await freePort()];
    const subgraphUrls = Object.fromEntries(subgraphNames.map((name) => [name, `http://127.0.0.1:${ports[name]}`]));
    const internalSecret = randomBytes(32).toString('base64url');
    const env: Record<string, string> = {
      LOG_LEVEL: 'info',
      HOST: '127.0.0.1',
      INTERNAL_SECRET: internalSecret,
      NATS_URL: options.natsUrl,
      // A stream and subjects of the run's own: the NATS server may be shared.
      EVENTS_STREAM: `BENCH_GW_${suffix}`,
      EVENTS_SUBJECT_PREFIX: `benchgw${suffix}.events.`,
      LIVE_SUBJECT_PREFIX: `benchgw${suffix}.live.`,
      JOBS_STREAM: `BENCH_GW_JOBS_${suffix}`,
      JOBS_SUBJECT_PREFIX: `benchgw${suffix}.jobs.`,
      PUBLIC_URL: `http://127.0.0.1:${oursPort}`,
      // Blobs (narration audio), the local mailbox: in the run's folder, removed with it.
      DATA_DIR: join(dir, 'data'),
      STORAGE_DIR: join(dir, 'blobs'),
      // Seeding waits on analyses; idle, the poll costs the story process a query per interval.
      STORY_ANALYSIS_POLL_MS: '300',
      OUTBOX_SWEEP_MS: '500',
      ...Object.fromEntries(subgraphNames.map((name) => [`SUBGRAPH_${name.toUpperCase()}_URL`, subgraphUrls[name]!])),
    };
    undo.push({ name: 'delete the streams', run: () => deleteStreams(options.natsUrl, [env.EVENTS_STREAM!, env.JOBS_STREAM!]) });

    const processes = new Map<string, BenchProcess>();
    undo.push({ name: 'stop the processes', run: () => Promise.all([...processes.values()].map((p) => p.stop())) });

    options.progress('provision', { database, roles: subgraphNames.length });
    const provision = await runScript(join(dir, 'provision.log'), ['scripts/provision.ts'], {
      ...env,
      DATABASE_URL: databaseUrl,
      ...Object.fromEntries(subgraphNames.map((name) => [`SUBGRAPH_${name.toUpperCase()}_DATABASE_URL`, roleUrls[name]!])),
    });
    if (provision.code !== 0) throw new Error(`npm run db:provision failed:\n${provision.output}`);

    const started = Date.now();
    options.progress('start subgraphs', { subgraphs: subgraphNames.join(',') });
    // Hive Gateway needs nothing of the subgraphs until it serves: it starts beside them.
    const launchOurs = (nodeArgs: string[], run: number) =>
      launch({
        name: run ? `ours-${run}` : 'ours',
        dir,
        nodeArgs,
        args: ['scripts/start-gateway.ts'],
        env: { ...env, PORT: String(oursPort), ADMIN_PORT: String(adminPort), ...options.oursEnv },
        ready: /"msg":"gateway ready"/,
      });
    const launchHive = (nodeArgs: string[], run: number) =>
      launch({ name: run ? `hive-${run}` : 'hive', dir, nodeArgs, args: ['bench/gateway-hive.ts'], env: { ...env, PORT: String(hivePort), ...options.hiveEnv }, ready: /hive gateway ready/ });
    const launched = await Promise.allSettled([
      launchHive([], 0),
      ...subgraphNames.map((name) =>
        launch({ name, dir, args: ['scripts/start-subgraph.ts', name], env: { ...env, PORT: String(ports[name]), DATABASE_URL: roleUrls[name]! }, ready: /"msg":"subgraph ready"/ }),
      ),
    ]);
    // Those that started are stopped by close() even when another did not.
    for (const outcome of launched) if (outcome.status === 'fulfilled') processes.set(outcome.value.name, outcome.value);
    const failed = launched.find((outcome) => outcome.status === 'rejected');
    if (failed) throw failed.reason;
    options.progress('subgraphs ready', { ms: Date.now() - started });

    processes.set('ours', await launchOurs([], 0));
    options.progress('gateways ready', { ms: Date.now() - started });
    let restarts = 0;

    return {
      subgraphUrls,
      ours: { url: `http://127.0.0.1:${oursPort}/graphql`, metricsUrl: `http://127.0.0.1:${adminPort}/metrics` },
      hive: { url: `http://127.0.0.1:${hivePort}/graphql` },
      internalSecret,
      dir,
      processes,
      async restart(gateway, nodeArgs) {
        await processes.get(gateway)!.stop();
        processes.set(gateway, await (gateway === 'ours' ? launchOurs : launchHive)(nodeArgs, ++restarts));
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** `node --import tsx <script>`, as `npm run start:*` and the image run it, its output to a file. */
function spawnScript(logPath: string, args: string[], env: Record<string, string>, nodeArgs: string[] = []): ChildProcess {
  const { DATABASE_URL: _db, NATS_URL: _nats, ...inherited } = process.env;
  const log = openSync(logPath, 'a');
  try {
    return spawn(process.execPath, ['--import', 'tsx', ...nodeArgs, ...args], { cwd: ROOT, env: { ...inherited, ...env }, stdio: ['ignore', log, log] });
  } finally {
    closeSync(log);
  }
}

async function runScript(logPath: string, args: string[], env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const child = spawnScript(logPath, args, env);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  return { code, output: readFileSync(logPath, 'utf8') };
}

async function launch(spec: { name: string; dir: string; args: string[]; env: Record<string, string>; ready: RegExp; nodeArgs?: string[] }): Promise<BenchProcess> {
  const logPath = join(spec.dir, `${spec.name}.log`);
  const child = spawnScript(logPath, spec.args, spec.env, spec.nodeArgs);
  let exited: string | null = null;
  child.once('exit', (code, signal) => (exited = `exited with ${code ?? signal}`));
  const tail = () => readFileSync(logPath, 'utf8').slice(-4_000);
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const force = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await gone;
    clearTimeout(force);
  };
  const deadline = Date.now() + READY_TIMEOUT_MS;
  // The log file is the process's own stdout: polling it costs nothing the process would notice.
  while (!spec.ready.test(readFileSync(logPath, 'utf8'))) {
    if (exited) throw new Error(`${spec.name} ${exited} before it was ready:\n${tail()}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${spec.name} was not ready within ${READY_TIMEOUT_MS} ms:\n${tail()}`);
    }
    await sleep(100);
  }
  return { name: spec.name, child, logPath, stop };
}

async function adminQuery(serverUrl: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

function withDatabase(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

