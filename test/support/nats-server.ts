import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './net.js';

export interface RunningNatsServer {
  url: string;
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 15_000;

/**
 * Spawns a nats-server with JetStream on a free loopback port and a fresh store folder, so a
 * test run never sees streams left behind by another run. Resolves once the server accepts
 * TCP connections.
 */
export async function startNatsServer(): Promise<RunningNatsServer> {
  const binary = natsServerBinary();
  const storeDir = await mkdtemp(join(tmpdir(), 'storyloom-nats-'));
  const port = await freePort();
  const child = spawn(binary, ['-a', HOST, '-p', String(port), '-js', '-sd', storeDir], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  // nats-server logs to stderr; keep the tail so a failed start can say why.
  let log = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-4_000);
  });

  const stop = async () => {
    await killAndWait(child);
    await rm(storeDir, { recursive: true, force: true });
  };

  try {
    await waitUntilAccepting(port, child, () => log);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: `nats://${HOST}:${port}`, stop };
}

function natsServerBinary(): string {
  if (existsSync('/usr/sbin/nats-server')) return '/usr/sbin/nats-server';
  // Otherwise rely on PATH lookup by spawn; a missing binary surfaces as an 'error' event.
  return 'nats-server';
}

async function waitUntilAccepting(port: number, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let exited: string | null = null;
  child.once('exit', (code, signal) => (exited = `exited with ${code ?? signal}`));
  child.once('error', (error) => (exited = `could not start: ${error.message}`));
  while (Date.now() < deadline) {
    if (exited) throw new Error(`nats-server ${exited}\n${log()}`);
    if (await canConnect(port)) return;
    // A short pause between connection attempts, not a wait for readiness itself.
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`nats-server did not accept connections on port ${port} within ${READY_TIMEOUT_MS} ms\n${log()}`);
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: HOST, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

async function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  // A server that ignores SIGTERM (e.g. stuck flushing the store) must not hang the test run.
  const force = setTimeout(() => child.kill('SIGKILL'), 5_000);
  force.unref();
  await exited;
  clearTimeout(force);
}
