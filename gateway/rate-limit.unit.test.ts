import type { IncomingMessage } from 'node:http';
import { validateKey } from '@nats-io/kv/internal';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger, type Logger } from '../platform/log.js';
import { clientIp, encodeKvKey, ipBucketOf, MemoryBucketStore, proxyBlockList, RateLimiter, retryAfterSeconds, type BucketPolicy, type BucketStore, type RateDecision } from './rate-limit.js';

const silent = createLogger('silent');

/** A limiter over a memory store, on a clock the test moves by hand. */
function limiter(policies: { user?: BucketPolicy; ip?: BucketPolicy } = {}) {
  const clock = { now: 1_700_000_000_000 };
  const store = new MemoryBucketStore({ sweepIntervalMs: 0, now: () => clock.now });
  const subject = new RateLimiter({
    store,
    policies: { user: policies.user ?? { capacity: 3, refillPerSecond: 1 }, ip: policies.ip ?? { capacity: 3, refillPerSecond: 1 } },
    logger: silent,
    now: () => clock.now,
  });
  return { subject, store, clock };
}

const user = { userId: 'b7e8c1de-3f00-4b7a-9a51-0c6f0e1f2a3b', ip: '203.0.113.9' };
const refusal = (retryAfterMs: number, remaining = 0): RateDecision => ({ allowed: false, remaining, retryAfterMs });

describe('RateLimiter token bucket', () => {
  it('allows a burst of capacity, then refuses with the exact time to the next token', async () => {
    const { subject, clock } = limiter();
    expect(await subject.check(user)).toEqual({ allowed: true, remaining: 2, retryAfterMs: 0 });
    expect(await subject.check(user)).toEqual({ allowed: true, remaining: 1, retryAfterMs: 0 });
    expect(await subject.check(user)).toEqual({ allowed: true, remaining: 0, retryAfterMs: 0 });
    expect(await subject.check(user)).toEqual(refusal(1_000));
    clock.now += 250;
    expect(await subject.check(user)).toEqual(refusal(750));
  });

  it('says Retry-After in whole seconds, rounded up', () => {
    expect([1, 999, 1_000, 1_001, 2_500].map((retryAfterMs) => retryAfterSeconds(refusal(retryAfterMs)))).toEqual([1, 1, 1, 2, 3]);
  });

  it('rounds the wait up to the whole millisecond at which the token is there', async () => {
    const { subject, clock } = limiter({ user: { capacity: 1, refillPerSecond: 3 } });
    await subject.check(user);
    const refused = await subject.check(user);
    expect(refused).toEqual(refusal(334));
    clock.now += 333;
    expect((await subject.check(user)).allowed).toBe(false);
    clock.now += 1;
    expect((await subject.check(user)).allowed).toBe(true);
  });

  it('refills over time, never above capacity', async () => {
    const { subject, clock } = limiter();
    for (let i = 0; i < 3; i++) await subject.check(user);
    clock.now += 2_000;
    expect(await subject.check(user)).toEqual({ allowed: true, remaining: 1, retryAfterMs: 0 });
    clock.now += 3_600_000;
    expect(await subject.check(user)).toEqual({ allowed: true, remaining: 2, retryAfterMs: 0 });
  });

  it('spends cost > 1 tokens at once, and waits for all of them', async () => {
    const { subject, clock } = limiter({ user: { capacity: 5, refillPerSecond: 2 } });
    expect(await subject.check(user, 4)).toEqual({ allowed: true, remaining: 1, retryAfterMs: 0 });
    expect(await subject.check(user, 3)).toEqual(refusal(1_000, 1));
    clock.now += 1_000;
    expect(await subject.check(user, 3)).toEqual({ allowed: true, remaining: 0, retryAfterMs: 0 });
    await expect(subject.check(user, 6)).rejects.toThrow(RangeError);
  });

  it('a refused request spends nothing, and a client that waits retryAfterMs recovers', async () => {
    const { subject, clock } = limiter({ user: { capacity: 2, refillPerSecond: 7 } });
    await subject.check(user);
    await subject.check(user);
    // A token takes 1/7 s; hammering every 20 ms does not push the wait out.
    for (let waited = 0; waited < 140; waited += 20) {
      expect(await subject.check(user)).toEqual(refusal(143 - waited));
      clock.now += 20;
    }
    clock.now += 3;
    expect(await subject.check(user)).toEqual({ allowed: true, remaining: 0, retryAfterMs: 0 });
    // Waiting exactly the advertised time always suffices, whatever the fractions.
    for (let i = 0; i < 200; i++) {
      const next = await subject.check(user);
      if (!next.allowed) {
        clock.now += next.retryAfterMs;
        expect(await subject.check(user)).toMatchObject({ allowed: true });
      }
      clock.now += (i * 37) % 101;
    }
  });

  it('a clock that steps back refills nothing and drains nothing', async () => {
    const { subject, clock } = limiter();
    await subject.check(user);
    clock.now -= 60_000;
    expect(await subject.check(user)).toEqual({ allowed: true, remaining: 1, retryAfterMs: 0 });
  });
});

describe('RateLimiter buckets', () => {
  it('a user spends from their own bucket only: other users and anonymous callers at the same address are not affected', async () => {
    const { subject } = limiter();
    for (let i = 0; i < 3; i++) await subject.check(user);
    expect((await subject.check(user)).allowed).toBe(false);
    expect((await subject.check({ userId: 'another-user', ip: user.ip })).allowed).toBe(true);
    expect((await subject.check({ userId: null, ip: user.ip })).remaining).toBe(2);
  });

  it('anonymous callers spend from their address, IPv6 addresses by /64', async () => {
    const { subject } = limiter();
    for (let i = 0; i < 3; i++) await subject.check({ ip: `2001:db8:1:2::${i + 1}` });
    expect((await subject.check({ ip: '2001:db8:1:2:ffff::9' })).allowed).toBe(false);
    expect((await subject.check({ ip: '2001:db8:1:3::1' })).allowed).toBe(true);
    expect((await subject.check({ ip: '198.51.100.7' })).allowed).toBe(true);
  });

  it('groups IPv6 addresses by /64 in one canonical form', () => {
    expect(ipBucketOf('2001:DB8:0:0001::1')).toBe('2001:db8:0:1::/64');
    expect(ipBucketOf('2001:db8::')).toBe('2001:db8:0:0::/64');
    expect(ipBucketOf('::1')).toBe('0:0:0:0::/64');
    expect(ipBucketOf('64:ff9b::192.0.2.1')).toBe('64:ff9b:0:0::/64');
    expect(ipBucketOf('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(ipBucketOf('192.0.2.1')).toBe('192.0.2.1');
  });
});

describe('MemoryBucketStore', () => {
  const policy = { capacity: 10, refillPerSecond: 5 };

  it('stays within maxKeys under many addresses, dropping the least recently used', async () => {
    const store = new MemoryBucketStore({ maxKeys: 100, sweepIntervalMs: 0 });
    await store.take('ip:keep', policy, 10, 0);
    for (let i = 0; i < 10_000; i++) {
      await store.take(`ip:10.0.${i >> 8}.${i & 255}`, policy, 1, 0);
      if (i % 50 === 0) await store.take('ip:keep', policy, 1, 0);
      expect(store.size).toBeLessThanOrEqual(100);
    }
    // The bucket in use survived the churn: still empty, still refusing.
    expect((await store.take('ip:keep', policy, 1, 0)).allowed).toBe(false);
  });

  it('sweeps the buckets that have refilled, and keeps the others', async () => {
    const store = new MemoryBucketStore({ sweepIntervalMs: 0 });
    for (let i = 0; i < 1_000; i++) await store.take(`ip:idle-${i}`, policy, 1, 0);
    await store.take('ip:busy', policy, 10, 1_000);
    // 1 token at 5 per second is back after 200 ms; 10 tokens after 2 s.
    expect(store.sweep(199)).toBe(0);
    expect(store.sweep(200)).toBe(1_000);
    expect(store.size).toBe(1);
    expect(store.sweep(2_999)).toBe(0);
    expect(store.sweep(3_000)).toBe(1);
    expect(store.size).toBe(0);
  });

  describe('on its interval', () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it('sweeps on an unref’d timer, on its own clock', async () => {
      vi.useFakeTimers();
      const clock = { now: 0 };
      const store = new MemoryBucketStore({ sweepIntervalMs: 1_000, now: () => clock.now });
      for (let i = 0; i < 500; i++) await store.take(`ip:${i}`, policy, 1, 0);
      expect(store.size).toBe(500);
      clock.now = 200;
      vi.advanceTimersByTime(1_000);
      expect(store.size).toBe(0);
      await store.close();
      expect(vi.getTimerCount()).toBe(0);
    });
  });
});

/** A logger that records its warnings and infos. */
function recordingLogger() {
  const lines: Array<{ level: 'warn' | 'info' | 'error'; message: string; fields: Record<string, unknown> }> = [];
  const record = (level: 'warn' | 'info' | 'error') => (fields: Record<string, unknown>, message: string) => void lines.push({ level, message, fields });
  const logger = { warn: record('warn'), info: record('info'), error: record('error') } as unknown as Logger;
  return { logger, lines };
}

describe('RateLimiter when the store fails', () => {
  /** A store that fails (or never answers) while `down` is set, and counts its calls. */
  function flakyStore(mode: 'throws' | 'hangs') {
    const memory = new MemoryBucketStore({ sweepIntervalMs: 0 });
    const state = { down: true, calls: 0 };
    const store: BucketStore = {
      take(key, policy, cost, nowMs) {
        state.calls += 1;
        if (!state.down) return memory.take(key, policy, cost, nowMs);
        return mode === 'throws' ? Promise.reject(new Error('TIMEOUT')) : new Promise<never>(() => undefined);
      },
    };
    return { store, state };
  }

  /** A limiter over a flaky store; its buckets hold two tokens and refill one a second. */
  function failing(mode: 'throws' | 'hangs') {
    const clock = { now: 0 };
    const { store, state } = flakyStore(mode);
    const { logger, lines } = recordingLogger();
    const errors: unknown[] = [];
    const policy: BucketPolicy = { capacity: 2, refillPerSecond: 1 };
    const subject = new RateLimiter({
      store,
      policies: { user: policy, ip: policy },
      logger,
      now: () => clock.now,
      onStoreError: (error) => errors.push(error),
      timeoutMs: 20,
      storeRetryMs: 1_000,
      warnEveryMs: 10_000,
    });
    return { subject, clock, state, lines, errors };
  }

  const allowed = (remaining: number): RateDecision => ({ allowed: true, remaining, retryAfterMs: 0 });

  it('limits in this process alone while the store fails, with one warning per interval, skips the store for storeRetryMs, then probes it again', async () => {
    const { subject, clock, state, lines, errors } = failing('throws');
    // Not fail-open: the process keeps buckets of its own, and a burst over capacity is refused.
    expect(await subject.check(user)).toEqual(allowed(1));
    expect(lines).toMatchObject([
      { level: 'warn', message: 'rate-limit store failed: limiting in this process alone', fields: { failuresSinceLastLog: 1, retryInMs: 1_000 } },
    ]);
    expect(errors).toHaveLength(1);
    expect(await subject.check(user)).toEqual(allowed(0));
    for (let i = 0; i < 5; i++) expect(await subject.check(user)).toEqual(refusal(1_000));
    // Each caller has a bucket of its own there, as in the store.
    expect(await subject.check({ userId: 'another-user', ip: user.ip })).toEqual(allowed(1));
    // Within storeRetryMs the store is not asked: no request waits on a store known to be down.
    expect(state.calls).toBe(1);

    // Every storeRetryMs one request tries again; failures are counted, warnings not repeated.
    // Meanwhile the process's bucket refills at the policy's rate, no faster.
    for (let i = 0; i < 5; i++) {
      clock.now += 1_000;
      expect(await subject.check(user)).toEqual(allowed(0));
      expect(await subject.check(user)).toEqual(refusal(1_000));
    }
    expect(state.calls).toBe(6);
    expect(errors).toHaveLength(6);
    expect(lines).toHaveLength(1);
    clock.now += 10_000;
    expect(await subject.check(user)).toEqual(allowed(1));
    expect(lines[1]).toMatchObject({ level: 'warn', message: 'rate-limit store failed: limiting in this process alone', fields: { failuresSinceLastLog: 6 } });
    expect(await subject.check(user)).toEqual(allowed(0));
    expect(await subject.check(user)).toEqual(refusal(1_000));
    expect(state.calls).toBe(7);

    // Back: the store's bucket decides again, and it is said so. This process's bucket is empty
    // (a second later it would allow one request and leave none); the store's is full.
    state.down = false;
    clock.now += 1_000;
    expect(await subject.check(user)).toEqual(allowed(1));
    expect(await subject.check(user)).toEqual(allowed(0));
    expect(await subject.check(user)).toEqual(refusal(1_000));
    expect(state.calls).toBe(10);
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatchObject({ level: 'info', message: 'rate-limit store answers again: limiting requests', fields: { failuresSinceLastLog: 0 } });
  });

  it('limits in this process alone after timeoutMs when the store does not answer, letting a single request probe it', async () => {
    const { subject, clock, state, errors } = failing('hangs');
    const started = performance.now();
    expect(await subject.check(user)).toEqual(allowed(1));
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(errors).toMatchObject([{ message: 'no answer within 20 ms' }]);
    expect(await subject.check(user)).toEqual(allowed(0));
    expect(await subject.check(user)).toEqual(refusal(1_000));

    // storeRetryMs later the bucket holds two tokens again. Of four concurrent requests, one
    // probes the store (and waits out the timeout); all four spend from the process's bucket.
    clock.now += 2_000;
    const concurrent = await Promise.all([subject.check(user), subject.check(user), subject.check(user), subject.check(user)]);
    expect(state.calls).toBe(2);
    expect(errors).toHaveLength(2);
    expect(concurrent.filter((decision) => decision.allowed)).toHaveLength(2);
    expect(concurrent.filter((decision) => !decision.allowed)).toEqual([refusal(1_000), refusal(1_000)]);
  });

  it('a throwing onStoreError does not fail the request', async () => {
    const { logger, lines } = recordingLogger();
    const subject = new RateLimiter({
      store: flakyStore('throws').store,
      policies: { user: { capacity: 1, refillPerSecond: 1 }, ip: { capacity: 1, refillPerSecond: 1 } },
      logger,
      onStoreError: () => {
        throw new Error('metrics down');
      },
    });
    expect((await subject.check(user)).allowed).toBe(true);
    expect(lines.map((line) => line.level)).toEqual(['error', 'warn']);
  });
});

function request(remoteAddress: string | undefined, forwardedFor?: string | string[]): IncomingMessage {
  return { socket: { remoteAddress }, headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor } } as unknown as IncomingMessage;
}

describe('clientIp', () => {
  it('with no trusted proxy, the socket address, whatever X-Forwarded-For says', () => {
    expect(clientIp(request('198.51.100.7', '1.2.3.4'), 0)).toBe('198.51.100.7');
    expect(clientIp(request('2001:db8::7'), 0)).toBe('2001:db8::7');
  });

  it('behind one proxy, the last entry: the address the proxy saw, not what the client claimed', () => {
    expect(clientIp(request('10.0.0.2', '1.2.3.4, 203.0.113.9'), 1)).toBe('203.0.113.9');
    expect(clientIp(request('10.0.0.2', '203.0.113.9'), 1)).toBe('203.0.113.9');
  });

  it('behind two proxies, the second entry from the right: the one the far proxy saw', () => {
    expect(clientIp(request('10.0.0.2', 'spoofed, 203.0.113.9, 10.0.0.1'), 2)).toBe('203.0.113.9');
    // Repeated headers form one list.
    expect(clientIp(request('10.0.0.2', ['spoofed, 203.0.113.9', '10.0.0.1']), 2)).toBe('203.0.113.9');
  });

  it('with fewer entries than proxies, the leftmost; with none, the socket address', () => {
    expect(clientIp(request('10.0.0.2', '203.0.113.9'), 3)).toBe('203.0.113.9');
    expect(clientIp(request('10.0.0.2'), 1)).toBe('10.0.0.2');
    expect(clientIp(request('10.0.0.2', ' , '), 1)).toBe('10.0.0.2');
  });

  it('normalizes ports, brackets, case and IPv4-mapped IPv6; an entry that is no address falls back to the socket', () => {
    expect(clientIp(request('::ffff:198.51.100.7'), 0)).toBe('198.51.100.7');
    expect(clientIp(request('10.0.0.2', '203.0.113.9:51234'), 1)).toBe('203.0.113.9');
    expect(clientIp(request('10.0.0.2', '[2001:DB8::9]:443'), 1)).toBe('2001:db8::9');
    expect(clientIp(request('10.0.0.2', '2001:db8::9'), 1)).toBe('2001:db8::9');
    expect(clientIp(request('10.0.0.2', '<script>'), 1)).toBe('10.0.0.2');
    expect(clientIp(request(undefined), 0)).toBe('unknown');
  });
});

describe('clientIp with the proxies\' addresses', () => {
  // Built per test: a list that cannot be built fails its tests, not the file.
  const proxies = () => proxyBlockList(['10.0.0.0/8', 'fc00::/7']);

  it('believes X-Forwarded-For from a peer among the proxies', () => {
    expect(clientIp(request('10.0.0.2', '1.2.3.4, 203.0.113.9'), 1, proxies())).toBe('203.0.113.9');
    expect(clientIp(request('10.255.0.1', 'spoofed, 203.0.113.9, 10.0.0.1'), 2, proxies())).toBe('203.0.113.9');
  });

  it('ignores the header of a peer outside them: a client that reached the gateway directly cannot pick its bucket', () => {
    expect(clientIp(request('198.51.100.7', '203.0.113.9'), 1, proxies())).toBe('198.51.100.7');
    expect(clientIp(request('11.0.0.2', '203.0.113.9'), 1, proxies())).toBe('11.0.0.2');
    expect(clientIp(request('2001:db8::7', '203.0.113.9'), 1, proxies())).toBe('2001:db8::7');
    // An empty list believes no one; with no trusted proxy the list is not even looked at.
    expect(clientIp(request('10.0.0.2', '203.0.113.9'), 1, proxyBlockList([]))).toBe('10.0.0.2');
    expect(clientIp(request('10.0.0.2', '203.0.113.9'), 0, proxies())).toBe('10.0.0.2');
    expect(clientIp(request(undefined, '203.0.113.9'), 1, proxies())).toBe('unknown');
  });

  it('matches IPv6 peers against IPv6 CIDRs', () => {
    expect(clientIp(request('fd12:3456::1', '203.0.113.9'), 1, proxies())).toBe('203.0.113.9');
    expect(clientIp(request('FC00::1', '2001:db8::9'), 1, proxies())).toBe('2001:db8::9');
    expect(clientIp(request('fe80::1', '203.0.113.9'), 1, proxies())).toBe('fe80::1');
    expect(clientIp(request('2001:db8::7', '203.0.113.9'), 1, proxyBlockList(['2001:db8::/32']))).toBe('203.0.113.9');
  });

  it('matches IPv4-mapped IPv6 peers (a dual-stack socket) against IPv4 CIDRs', () => {
    expect(clientIp(request('::ffff:10.1.2.3', '203.0.113.9'), 1, proxies())).toBe('203.0.113.9');
    expect(clientIp(request('::ffff:198.51.100.7', '203.0.113.9'), 1, proxies())).toBe('198.51.100.7');
  });

  it('proxyBlockList refuses what is not a CIDR', () => {
    for (const cidr of ['10.0.0.0', '10.0.0.0/33', 'nonsense/8', '::1/129', '10.0.0.0/', '/8', '10.0.0.0/-1', '10.0.0.0/8.5', '10.0.0.0/8/9']) {
      expect(() => proxyBlockList([cidr]), cidr).toThrow(RangeError);
    }
    expect(() => proxyBlockList(['10.0.0.0/8', 'nonsense/8'])).toThrow('not a CIDR: nonsense/8');
    expect(() => proxyBlockList(['0.0.0.0/0', '10.0.0.0/32', '::/0', '::1/128'])).not.toThrow();
  });
});

describe('encodeKvKey', () => {
  it('maps user ids and IPv6 buckets to valid, distinct NATS KV keys', () => {
    const keys = ['u:b7e8c1de-3f00-4b7a-9a51-0c6f0e1f2a3b', 'ip:2001:db8:0:1::/64', 'ip:203.0.113.9', 'u:.leading.dot', 'u:ünïcode id', `u:${'x'.repeat(500)}`];
    const encoded = keys.map(encodeKvKey);
    for (const key of encoded) expect(() => validateKey(key)).not.toThrow();
    expect(new Set(encoded).size).toBe(keys.length);
    expect(encoded[5]).toMatch(/^sha256\.[0-9a-f]{64}$/);
  });
});
