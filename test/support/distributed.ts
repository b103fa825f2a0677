import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { subgraphNames } from '../../subgraphs/catalog.js';
import { createTestDatabase } from './database.js';
import { freePort } from './net.js';
import type { GraphQLResponse } from './stack.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const READY_TIMEOUT_MS = 90_000;

/** One process of the distributed mode, as `npm run start:subgraph -- <name>` runs it. */
export interface DistributedProcess {
  name: string;
  /** Base URL (no /graphql). */
  url: string;
  /** Where its /ready and /metrics are: the gateway's admin port, else `url`. */
  adminUrl: string;
  child: ChildProcess | null;
  output(): string;
}

/** A gateway replica beside the stack's own (`startGateway`). */
export interface GatewayReplica extends DistributedProcess {
  gatewayUrl: string;
  /** SIGTERM, and waits for the process to exit; resolves with its exit code. */
  stop(): Promise<number | null>;
}

export interface DistributedStack {
  gatewayUrl: string;
  processes: Map<string, DistributedProcess>;
  /** The administrator's URL of the run's database (the roles' schemas are in it). */
  databaseUrl: string;
  /** Each subgraph's own role's URL. */
  roleUrls: Record<string, string>;
  env: Record<string, string>;
  gql<T = any>(query: string, variables?: Record<string, unknown>, options?: { token?: string; headers?: Record<string, string> }): Promise<GraphQLResponse<T>>;
  /** SIGKILL: the process dies mid-whatever, as a crashed container does. */
  kill(name: string): Promise<void>;
  /** SIGTERM, and waits for the process to exit; resolves with its exit code. */
  terminate(name: string): Promise<number | null>;
  /** Starts a stopped subgraph again on its port and waits until it is ready. */
  restart(name: string): Promise<void>;
  /**
   * Another gateway process (a replica) on ports of its own, with the stack's env and `env`
   * over it, ready to serve. Not in `processes`; `close` kills it if it is still running, and
   * deletes the NATS KV bucket of its rate limits (RATE_LIMIT_KV_BUCKET).
   */
  startGateway(env?: Record<string, string>): Promise<GatewayReplica>;
  close(): Promise<void>;
}

/**
 * The distributed mode for real on this machine: `npm run db:provision` makes a role per
 * subgraph on a fresh database, then every subgraph and the gateway run as separate node
 * processes (the commands the Dockerfile runs), each subgraph connecting as its own role,
 * talking over the run's nats-server (a stream and subjects of this stack's own).
 */
export async function startDistributed(options: { natsUrl: string; env?: Record<string, string> }): Promise<DistributedStack> {
  const suffix = randomBytes(4).toString('hex');
  const db = await createTestDatabase();
  const names = subgraphNames;
  const ports = Object.fromEntries(await Promise.all(names.map(async (name) => [name, await freePort()] as const)));
  const gatewayPort = await freePort();
  const adminPort = await freePort();
  const roleUrls = Object.fromEntries(names.map((name) => [name, withUser(db.url, `sl_${suffix}_${name}`, randomBytes(12).toString('hex'))]));
  const urls = Object.fromEntries(names.map((name) => [name, `http://127.0.0.1:${ports[name]}`]));
  const env: Record<string, string> = {
    LOG_LEVEL: 'info',
    HOST: '127.0.0.1',
    INTERNAL_SECRET: randomBytes(32).toString('base64url'),
    NATS_URL: options.natsUrl,
    EVENTS_STREAM: `D_${suffix}`,
    EVENTS_SUBJECT_PREFIX: `d${suffix}.events.`,
    LIVE_SUBJECT_PREFIX: `d${suffix}.live.`,
    JOBS_STREAM: `DJ_${suffix}`,
    JOBS_SUBJECT_PREFIX: `d${suffix}.jobs.`,
    PUBLIC_URL: `http://127.0.0.1:${gatewayPort}`,
    OUTBOX_SWEEP_MS: '200',
    // The rate limits' token buckets live on the run's shared nats-server: a bucket of this
    // stack's own, so requests of other stacks (all from 127.0.0.1) do not spend its address's.
    RATE_LIMIT_KV_BUCKET: `rl_${suffix}`,
    ...Object.fromEntries(names.map((name) => [`SUBGRAPH_${name.toUpperCase()}_URL`, urls[name]!])),
    ...options.env,
  };
  const processes = new Map<string, DistributedProcess>();
  const replicas: DistributedProcess[] = [];
  const kvBuckets = new Set<string>([env.RATE_LIMIT_KV_BUCKET!]);
  const launchSubgraph = (name: string) =>
    launch(name, ['scripts/start-subgraph.ts', name], { ...env, PORT: String(ports[name]), DATABASE_URL: roleUrls[name]! }, urls[name]!, /"msg":"subgraph ready"/);
  const launchGateway = () =>
    launch('gateway', ['scripts/start-gateway.ts'], { ...env, PORT: String(gatewayPort), ADMIN_PORT: String(adminPort) }, `http://127.0.0.1:${gatewayPort}`, /"msg":"gateway ready"/, `http://127.0.0.1:${adminPort}`);

  const stack: DistributedStack = {
    gatewayUrl: `http://127.0.0.1:${gatewayPort}/graphql`,
    processes,
    databaseUrl: db.url,
    roleUrls,
    env,
    async gql(query, variables, opts = {}) {
      const response = await fetch(stack.gatewayUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}), ...opts.headers },
        body: JSON.stringify({ query, variables }),
      });
      const body = (await response.json()) as { data?: unknown; errors?: GraphQLResponse['errors'] };
      return { status: response.status, headers: response.headers, data: body.data as any, errors: body.errors };
    },
    async kill(name) {
      const running = processes.get(name);
      if (running) await signal(running, 'SIGKILL');
    },
    async terminate(name) {
      const running = processes.get(name);
      return running ? signal(running, 'SIGTERM') : null;
    },
    async restart(name) {
      processes.set(name, name === 'gateway' ? await launchGateway() : await launchSubgraph(name));
    },
    async startGateway(extraEnv: Record<string, string> = {}) {
      const [port, admin] = [await freePort(), await freePort()];
      const replicaEnv: Record<string, string> = { ...env, ...extraEnv, PORT: String(port), ADMIN_PORT: String(admin) };
      if (replicaEnv.RATE_LIMIT_KV_BUCKET) kvBuckets.add(replicaEnv.RATE_LIMIT_KV_BUCKET);
      const replica = await launch(`gateway-${port}`, ['scripts/start-gateway.ts'], replicaEnv, `http://127.0.0.1:${port}`, /"msg":"gateway ready"/, `http://127.0.0.1:${admin}`);
      replicas.push(replica);
      return Object.assign(replica, { gatewayUrl: `${replica.url}/graphql`, stop: () => signal(replica, 'SIGTERM') });
    },
    async close() {
      await Promise.all([...processes.values(), ...replicas].map((running) => signal(running, 'SIGKILL')));
      await dropRoles(db.url, Object.values(roleUrls).map((url) => decodeURIComponent(new URL(url).username))).catch(() => undefined);
      await db.drop();
      // A KV bucket is the stream KV_<bucket>.
      await deleteStreams(options.natsUrl, [env.EVENTS_STREAM!, env.JOBS_STREAM!, ...[...kvBuckets].map((bucket) => `KV_${bucket}`)]);
    },
  };

  try {
    const provision = await run(['scripts/provision.ts'], { ...env, DATABASE_URL: db.url, ...Object.fromEntries(names.map((name) => [`SUBGRAPH_${name.toUpperCase()}_DATABASE_URL`, roleUrls[name]!])) });
    if (provision.code !== 0) throw new Error(`npm run db:provision failed:\n${provision.output}`);
    const started = await Promise.all(names.map((name) => launchSubgraph(name)));
    for (const process of started) processes.set(process.name, process);
    processes.set('gateway', await launchGateway());
    return stack;
  } catch (error) {
    await stack.close();
    throw error;
  }
}

/** Sends `name` to the process and waits for it to exit; resolves with its exit code (that of its earlier exit if it is not running). */
async function signal(running: DistributedProcess, name: 'SIGKILL' | 'SIGTERM'): Promise<number | null> {
  const child = running.child;
  if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill(name);
  const code = await exited;
  running.child = null;
  return code;
}

export function withUser(databaseUrl: string, user: string, password: string): string {
  const url = new URL(databaseUrl);
  url.username = user;
  url.password = password;
  return url.toString();
}

/** `node --import tsx <script>`: what `npm run <script>` and the image run. */
function spawnScript(args: string[], env: Record<string, string>): ChildProcess {
  const { DATABASE_URL: _db, NATS_URL: _nats, ...inherited } = process.env;
  return spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: ROOT, env: { ...inherited, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

function run(args: string[], env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawnScript(args, env);
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('close', (code) => resolve({ code, output }));
  });
}

async function launch(name: string, args: string[], env: Record<string, string>, url: string, ready: RegExp, adminUrl = url): Promise<DistributedProcess> {
  const child = spawnScript(args, env);
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      // Not left running behind the failed start: nothing else knows of it.
      child.kill('SIGKILL');
      reject(new Error(`${name} was not ready within ${READY_TIMEOUT_MS} ms:\n${output}`));
    }, READY_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (ready.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code} before it was ready:\n${output}`));
    });
  });
  return { name, url, adminUrl, child, output: () => output };
}

export async function dropRoles(adminUrl: string, roles: string[]): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    // Owned objects go with the database; what the roles own elsewhere (nothing) and the roles go here.
    for (const role of roles) {
      await admin.query(`drop owned by "${role}"`).catch(() => undefined);
      await admin.query(`drop role if exists "${role}"`);
    }
  } finally {
    await admin.end();
  }
}

export async function deleteStreams(url: string, streams: string[]): Promise<void> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    for (const stream of streams) await jsm.streams.delete(stream).catch(() => false);
  } finally {
    await nc.close();
  }
}
