import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kvm } from '@nats-io/kv';
import { connect, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Logger } from '../platform/log.js';
import { startNatsServer, type RunningNatsServer } from '../test/support/nats-server.js';
import { freePort } from '../test/support/net.js';
import { encodeKvKey, NatsKvBucketStore, RateLimiter, type BucketPolicy, type RateDecision } from './rate-limit.js';

let server: RunningNatsServer;
const connections: NatsConnection[] = [];

beforeAll(async () => {
  server = await startNatsServer();
});

afterAll(async () => {
  await Promise.allSettled(connections.map((nc) => nc.close()));
  await server?.stop();
});

async function natsConnection(url: string, options: Partial<ConnectionOptions> = {}): Promise<NatsConnection> {
  const nc = await connect({ servers: url, noAsyncTraces: true, ...options });
  connections.push(nc);
  return nc;
}

/** A gateway replica's store: its own connection to the shared bucket. */
async function replica(bucket: string, ttlMs = 600_000): Promise<NatsKvBucketStore> {
  return NatsKvBucketStore.open({ nc: await natsConnection(server.url), bucket, ttlMs });
}

const freshBucket = () => `rate_limits_${randomBytes(4).toString('hex')}`;
const allowedCount = (decisions: RateDecision[]) => decisions.filter((decision) => decision.allowed).length;

/** The tokens stored under `key`, read on a connection of its own. */
async function storedTokens(bucket: string, key: string): Promise<number | undefined> {
  const kv = await new Kvm(await natsConnection(server.url)).open(bucket);
  return (await kv.get(encodeKvKey(key)))?.json<{ tokens: number }>().tokens;
}

describe('NatsKvBucketStore', () => {
  // A fixed clock: no refill during a test, so what was spent is exactly what is missing.
  const now = 1_700_000_000_000;

  it('two replicas share one bucket: together they spend capacity tokens, no more', async () => {
    const bucket = freshBucket();
    const [a, b] = await Promise.all([replica(bucket), replica(bucket)]);
    const policy: BucketPolicy = { capacity: 4, refillPerSecond: 1 };
    const decisions: RateDecision[] = [];
    for (let i = 0; i < 6; i++) decisions.push(await (i % 2 ? b : a).take('ip:2001:db8:0:1::/64', policy, 1, now));
    expect(decisions.map((decision) => decision.remaining)).toEqual([3, 2, 1, 0, 0, 0]);
    expect(allowedCount(decisions)).toBe(4);
    expect(decisions[4]).toEqual({ allowed: false, remaining: 0, retryAfterMs: 1_000 });
    // A second later either replica sees the refill.
    expect(await b.take('ip:2001:db8:0:1::/64', policy, 1, now + 1_000)).toEqual({ allowed: true, remaining: 0, retryAfterMs: 0 });
  });

  it('50 parallel takes from two replicas never over-spend', async () => {
    const bucket = freshBucket();
    const [a, b] = await Promise.all([replica(bucket), replica(bucket)]);
    const policy: BucketPolicy = { capacity: 20, refillPerSecond: 1 };
    const decisions = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 ? b : a).take('u:parallel', policy, 1, now)));
    expect(allowedCount(decisions)).toBe(20);
    expect(await storedTokens(bucket, 'u:parallel')).toBe(0);
  });

  it('replicas racing take by take: compare-and-set loses no spend and allows no extra one', async () => {
    const bucket = freshBucket();
    const replicas = await Promise.all(Array.from({ length: 5 }, () => replica(bucket)));
    const policy: BucketPolicy = { capacity: 60, refillPerSecond: 1 };
    // Each replica takes one at a time, so every write races the other replicas', not its own.
    const perReplica = await Promise.all(
      replicas.map(async (store) => {
        const decisions: RateDecision[] = [];
        for (let i = 0; i < 20; i++) decisions.push(await store.take('u:racing', policy, 1, now));
        return decisions;
      }),
    );
    const allowed = allowedCount(perReplica.flat());
    expect(allowed).toBeLessThanOrEqual(60);
    // A conflict lost 8 times in a row is refused (by design); it should be rare, not common.
    expect(allowed).toBeGreaterThanOrEqual(55);
    expect(await storedTokens(bucket, 'u:racing')).toBe(60 - allowed);
  });

  it('an idle key expires with the bucket TTL, leaving a full bucket', async () => {
    const bucket = freshBucket();
    const store = await replica(bucket, 1_000);
    const policy: BucketPolicy = { capacity: 1, refillPerSecond: 1 };
    expect((await store.take('ip:192.0.2.1', policy, 1, now)).allowed).toBe(true);
    expect((await store.take('ip:192.0.2.1', policy, 1, now)).allowed).toBe(false);
    await vi.waitFor(async () => expect(await storedTokens(bucket, 'ip:192.0.2.1')).toBeUndefined(), { timeout: 5_000, interval: 100 });
    // Same clock, so no refill: the key itself is gone.
    expect((await store.take('ip:192.0.2.1', policy, 1, now)).allowed).toBe(true);
  });

  it('refuses a policy that takes longer to refill than the TTL, and updates the TTL of an existing bucket', async () => {
    const bucket = freshBucket();
    const store = await replica(bucket, 10_000);
    await expect(store.take('u:x', { capacity: 100, refillPerSecond: 1 }, 1, now)).rejects.toThrow(/shorter than the 100000 ms/);
    await replica(bucket, 20_000);
    const kv = await new Kvm(await natsConnection(server.url)).open(bucket);
    expect((await kv.status()).ttl).toBe(20_000);
  });
});

/** A nats-server this file can stop and start again on the same port and store. */
async function restartableNatsServer() {
  const port = await freePort();
  const storeDir = await mkdtemp(join(tmpdir(), 'storyloom-nats-restart-'));
  const binary = existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : 'nats-server';
  let child: ChildProcess | undefined;
  const accepting = () =>
    new Promise<boolean>((resolve) => {
      const socket = createConnection({ host: '127.0.0.1', port });
      socket.once('connect', () => resolve(true)).once('error', () => resolve(false));
      socket.once('close', () => socket.destroy());
    }).finally(() => undefined);
  const start = async () => {
    child = spawn(binary, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir], { stdio: 'ignore' });
    await vi.waitFor(async () => expect(await accepting()).toBe(true), { timeout: 15_000, interval: 25 });
  };
  const stop = async () => {
    const running = child;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
    running.kill('SIGTERM');
    await exited;
  };
  await start();
  return { url: `nats://127.0.0.1:${port}`, start, stop, remove: async () => (await stop(), await rm(storeDir, { recursive: true, force: true })) };
}

/** A logger that records its warnings and infos. */
function recordingLogger() {
  const lines: Array<{ level: string; message: string }> = [];
  const record = (level: string) => (_fields: unknown, message: string) => void lines.push({ level, message });
  return { lines, logger: { warn: record('warn'), info: record('info'), error: record('error') } as unknown as Logger };
}

describe('RateLimiter over NATS KV', () => {
  it('limits in this process alone while the NATS server is down, and by the shared buckets again once it is back', async () => {
    const nats = await restartableNatsServer();
    try {
      const nc = await natsConnection(nats.url, { maxReconnectAttempts: -1, reconnectTimeWait: 50 });
      const bucket = freshBucket();
      const store = await NatsKvBucketStore.open({ nc, bucket, ttlMs: 600_000, requestTimeoutMs: 200 });
      const { logger, lines } = recordingLogger();
      const errors: unknown[] = [];
      const limiter = new RateLimiter({
        store,
        // A slow refill: a bucket stays empty for the length of the test.
        policies: { user: { capacity: 2, refillPerSecond: 0.01 }, ip: { capacity: 2, refillPerSecond: 0.01 } },
        logger,
        onStoreError: (error) => errors.push(error),
        timeoutMs: 300,
        storeRetryMs: 100,
      });
      const caller = { ip: '203.0.113.50' };
      const other = { ip: '203.0.113.51' };
      const decisions = async (who: { ip: string }, n: number) => {
        const made: RateDecision[] = [];
        for (let i = 0; i < n; i++) made.push(await limiter.check(who));
        return made;
      };
      expect((await decisions(caller, 3)).map((decision) => decision.allowed)).toEqual([true, true, false]);

      // Down: this process starts buckets of its own (it cannot see the shared one), and still
      // refuses a burst over their capacity.
      await nats.stop();
      const during = await decisions(caller, 4);
      expect(during.map((decision) => decision.allowed)).toEqual([true, true, false, false]);
      expect(during[2]!.retryAfterMs).toBeGreaterThan(90_000);
      expect((await decisions(other, 3)).map((decision) => decision.allowed)).toEqual([true, true, false]);
      expect(errors.length).toBeGreaterThanOrEqual(1);
      expect(lines.filter((line) => line.level === 'warn')).toEqual([{ level: 'warn', message: 'rate-limit store failed: limiting in this process alone' }]);

      await nats.start();
      await vi.waitFor(
        async () => {
          await limiter.check(caller);
          expect(lines.at(-1)).toEqual({ level: 'info', message: 'rate-limit store answers again: limiting requests' });
        },
        { timeout: 15_000, interval: 100 },
      );
      // Back: the shared buckets decide again. `other` emptied its bucket in this process only;
      // the shared one is full.
      expect(await limiter.check(other)).toEqual({ allowed: true, remaining: 1, retryAfterMs: 0 });
      // The shared bucket survived the restart (file storage): the caller is still out of tokens.
      expect((await limiter.check(caller)).allowed).toBe(false);
      const kv = await new Kvm(nc).open(bucket);
      expect((await kv.get(encodeKvKey('ip:203.0.113.51')))?.json<{ tokens: number }>().tokens).toBe(1);
      expect((await kv.get(encodeKvKey('ip:203.0.113.50')))?.json<{ tokens: number }>().tokens).toBeLessThan(0.01);
      expect(lines.at(-1)).toEqual({ level: 'info', message: 'rate-limit store answers again: limiting requests' });
    } finally {
      await nats.remove();
    }
  });
});
