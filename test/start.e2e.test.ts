import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { clientOperation } from './support/clients.js';
import { createTestDatabase } from './support/database.js';
import { freePort } from './support/net.js';

/**
 * `npm start` as a newcomer runs it: no DATABASE_URL, no NATS_URL, so an embedded PostgreSQL
 * and the in-process transport. It serves Register and Me, stops cleanly on Ctrl-C (SIGINT to
 * the process group, as a terminal sends it), and keeps its data for the next start.
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface Started {
  child: ChildProcess;
  gatewayUrl: string;
  output: () => string;
  /** Resolves when the process has exited and everything it wrote has been read. */
  closed: Promise<void>;
}

/** Runs `command` in its own process group, without DATABASE_URL and NATS_URL unless `env` sets them. */
async function launch(command: string[], env: Record<string, string>): Promise<Started> {
  const { DATABASE_URL: _db, NATS_URL: _nats, ...inherited } = process.env;
  const child = spawn(command[0]!, command.slice(1), { cwd: ROOT, env: { ...inherited, ...env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const gatewayUrl = await new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const ready = /"gateway":"([^"]+)".*"msg":"storyloom ready"/.exec(output);
      if (ready) resolve(ready[1]!);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${command.join(' ')} exited with ${code} before it was ready:\n${output}`)));
  });
  // 'close' comes once the process has exited and its output pipes are drained.
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  return { child, gatewayUrl, output: () => output, closed };
}

const npmStart = (env: Record<string, string>) => launch(['npm', 'start'], env);

const groupAlive = (pgid: number) => {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * Ctrl-C: SIGINT to the whole process group (npm, tsx, node and the embedded postgres), then
 * wait until every process of the group is gone. npm itself dies of the SIGINT, as in a terminal.
 */
async function interrupt(started: Started): Promise<void> {
  const pgid = started.child.pid!;
  process.kill(-pgid, 'SIGINT');
  await vi.waitFor(() => expect(groupAlive(pgid)).toBe(false), { timeout: 30_000, interval: 50 });
  // The last lines (the shutdown's) may still sit in the pipe when the group is gone.
  await started.closed;
}

const gql = async (url: string, query: string, variables: object, token?: string) => {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  return (await res.json()) as { data: any; errors?: unknown[] };
};

let dataDir: string | null = null;
afterAll(async () => {
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('npm start (all-in-one)', () => {
  it('serves Register and Me through the gateway, stops on Ctrl-C, and keeps its data', { timeout: 180_000 }, async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'storyloom-start-'));
    // As root, the embedded server runs as the `postgres` user, which must reach the folder.
    await chmod(dataDir, 0o755);
    const env = { DATA_DIR: dataDir, PORT: String(await freePort()), EMBEDDED_PG_PORT: String(await freePort()), LOG_LEVEL: 'info' };

    const first = await npmStart(env);
    expect(first.output()).toContain('"transport":"IN_PROCESS"');
    expect(first.output()).toMatch(/"startupMs":\d+/);
    const registered = await gql(first.gatewayUrl, clientOperation('Register'), {
      input: { email: 'newcomer@example.com', password: 'a long password', displayName: 'Newcomer' },
    });
    expect(registered.data.register.userErrors).toEqual([]);
    const me = await gql(first.gatewayUrl, '{ me { id email displayName } }', {}, registered.data.register.session.accessToken);
    expect(me.data.me).toEqual({ id: registered.data.register.user.id, email: 'newcomer@example.com', displayName: 'Newcomer' });
    await interrupt(first);
    expect(first.output()).toContain('"msg":"stopped"');
    expect(first.output()).not.toContain('"level":50');

    const second = await npmStart(env);
    const login = await gql(second.gatewayUrl, clientOperation('LogIn'), { input: { email: 'newcomer@example.com', password: 'a long password' } });
    expect(login.data.logIn.user.id).toBe(registered.data.register.user.id);
    await interrupt(second);
    expect(second.output()).toContain('"msg":"stopped"');
  });
});

describe('stopping with DATABASE_URL', () => {
  it('drains and exits 0 on SIGINT to the server process alone', { timeout: 60_000 }, async () => {
    const db = await createTestDatabase();
    try {
      // The same entry point as `npm start`, without npm and tsx's wrapper process in between.
      const started = await launch(['node', '--import', 'tsx', 'scripts/start.ts'], { DATABASE_URL: db.url, PORT: String(await freePort()), LOG_LEVEL: 'info' });
      const registered = await gql(started.gatewayUrl, clientOperation('Register'), {
        input: { email: 'own-db@example.com', password: 'a long password', displayName: 'Own' },
      });
      expect(registered.data.register.userErrors).toEqual([]);
      const exit = new Promise<number | null>((resolve) => started.child.once('exit', (code) => resolve(code)));
      process.kill(started.child.pid!, 'SIGINT');
      expect(await exit).toBe(0);
      expect(started.output()).toContain('"msg":"stopped"');
      expect(started.output()).not.toMatch(/"level":(50|60)/);
    } finally {
      await db.drop();
    }
  });
});
