import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { BlockList, isIP, isIPv6 } from 'node:net';
import { jetstream, JetStreamApiCodes, JetStreamApiError, type JetStreamClient } from '@nats-io/jetstream';
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import { connect, nanos, type NatsConnection } from '@nats-io/transport-node';
import { withinDeadline } from '../platform/deadline.js';
import type { Logger } from '../platform/log.js';

// Not rate-limiter-flexible: its limiters are fixed windows, not token buckets, and it has no NATS store.

/** A token bucket: up to `capacity` requests at once, refilled continuously at `refillPerSecond`. */
export interface BucketPolicy {
  capacity: number;
  refillPerSecond: number;
}

export interface RateDecision {
  allowed: boolean;
  /** Whole tokens left in the bucket after this request. */
  remaining: number;
  /** When refused, how long until the bucket holds enough tokens; 0 when allowed. */
  retryAfterMs: number;
}

/** Where the buckets live: one process's memory, or a store shared by every gateway replica. */
export interface BucketStore {
  take(key: string, policy: BucketPolicy, cost: number, nowMs: number): Promise<RateDecision>;
  close?(): Promise<void>;
}

/** A bucket as stored: its tokens at time `at` (ms since the epoch). */
interface BucketState {
  tokens: number;
  at: number;
}

// Tokens are fractional; without a tolerance, 0.7 + 0.3 refilled tokens can come out a hair
// under 1 and refuse a client that waited exactly retryAfterMs.
const EPSILON = 1e-9;

/** The `Retry-After` header of a refusal: whole seconds, rounded up, at least 1 (0 would invite an instant retry). */
export function retryAfterSeconds(decision: RateDecision): number {
  return Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
}

/** How long an empty bucket takes to fill: after that long idle, a bucket carries no information. */
export function fullRefillMs(policy: BucketPolicy): number {
  return Math.ceil((policy.capacity * 1000) / policy.refillPerSecond);
}

export function assertPolicy(policy: BucketPolicy, name = 'policy'): void {
  if (!(Number.isFinite(policy.capacity) && policy.capacity >= 1)) throw new RangeError(`${name}.capacity must be at least 1`);
  if (!(Number.isFinite(policy.refillPerSecond) && policy.refillPerSecond > 0)) throw new RangeError(`${name}.refillPerSecond must be positive`);
}

/** A cost above the capacity could never be paid: a caller's bug, not a refusal. */
export function assertCost(cost: number, policy: BucketPolicy): void {
  if (!(Number.isFinite(cost) && cost > 0 && cost <= policy.capacity)) throw new RangeError(`cost must be in (0, ${policy.capacity}], got ${cost}`);
}

/**
 * The token bucket rule, no I/O: refill `previous` up to `nowMs`, then spend `cost` if there is
 * enough. A refused request spends nothing. A clock behind `previous.at` (another replica's,
 * a few ms off) refills nothing rather than draining the bucket, and never moves `at` back.
 */
export function spend(previous: BucketState | undefined, policy: BucketPolicy, cost: number, nowMs: number): { decision: RateDecision; state: BucketState } {
  assertCost(cost, policy);
  const elapsedMs = previous ? Math.max(0, nowMs - previous.at) : 0;
  const available = previous ? Math.min(policy.capacity, previous.tokens + (elapsedMs * policy.refillPerSecond) / 1000) : policy.capacity;
  const at = previous ? Math.max(previous.at, nowMs) : nowMs;
  if (available + EPSILON >= cost) {
    const tokens = Math.max(0, available - cost);
    return { decision: { allowed: true, remaining: Math.floor(tokens + EPSILON), retryAfterMs: 0 }, state: { tokens, at } };
  }
  // Half the tolerance: after exactly retryAfterMs the comparison above passes despite rounding.
  const missing = cost - available - EPSILON / 2;
  const retryAfterMs = Math.max(1, Math.ceil((missing * 1000) / policy.refillPerSecond));
  return { decision: { allowed: false, remaining: Math.floor(available + EPSILON), retryAfterMs }, state: { tokens: available, at } };
}

interface MemoryBucket extends BucketState {
  /** When the bucket will have refilled, and may be dropped without changing any decision. */
  fullAt: number;
}

export interface MemoryBucketStoreOptions {
  /** At most this many buckets; past it the least recently used one is dropped. */
  maxKeys?: number;
  /** How often buckets that have refilled are dropped; 0 for never (tests call `sweep`). */
  sweepIntervalMs?: number;
  /** The clock of the periodic sweep: the one the limiter uses. */
  now?: () => number;
}

/** Buckets in one process's memory (the all-in-one mode). */
export class MemoryBucketStore implements BucketStore {
  // Map order is insertion order; a bucket is re-inserted on every take, so the first entry is
  // the least recently used one.
  private readonly buckets = new Map<string, MemoryBucket>();
  private readonly maxKeys: number;
  private readonly now: () => number;
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(options: MemoryBucketStoreOptions = {}) {
    this.maxKeys = options.maxKeys ?? 100_000;
    if (!(Number.isInteger(this.maxKeys) && this.maxKeys >= 1)) throw new RangeError('maxKeys must be a positive integer');
    this.now = options.now ?? Date.now;
    const every = options.sweepIntervalMs ?? 60_000;
    if (every > 0) {
      this.timer = setInterval(() => this.sweep(), every);
      this.timer.unref();
    }
  }

  get size(): number {
    return this.buckets.size;
  }

  async take(key: string, policy: BucketPolicy, cost: number, nowMs: number): Promise<RateDecision> {
    const { decision, state } = spend(this.buckets.get(key), policy, cost, nowMs);
    this.buckets.delete(key);
    const fullAt = state.at + ((policy.capacity - state.tokens) * 1000) / policy.refillPerSecond;
    this.buckets.set(key, { ...state, fullAt });
    // Many addresses (a scan, a botnet) must not grow the map without bound. The least recently
    // used bucket is most likely full already; if not, its caller gets a fresh one: a small
    // leak in the limit, bounded memory in exchange.
    while (this.buckets.size > this.maxKeys) {
      const oldest = this.buckets.keys().next();
      if (oldest.done) break;
      this.buckets.delete(oldest.value);
    }
    return decision;
  }

  /** Drops every bucket that has refilled by `nowMs`; returns how many. */
  sweep(nowMs = this.now()): number {
    let dropped = 0;
    for (const [key, bucket] of this.buckets) {
      if (bucket.fullAt <= nowMs) {
        this.buckets.delete(key);
        dropped += 1;
      }
    }
    return dropped;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.buckets.clear();
  }
}

export interface NatsKvBucketStoreOptions {
  /** The KV bucket; created if missing. */
  bucket?: string;
  /**
   * How long an untouched key lives (the KV bucket's max age). At least the longest
   * `fullRefillMs` of the policies used: a key that expired before refilling would hand its
   * caller a full bucket early.
   */
  ttlMs: number;
  /** Per NATS request. */
  requestTimeoutMs?: number;
  /** Compare-and-set attempts per take before giving up on a key (see `settle`). */
  maxAttempts?: number;
}

interface PendingTake {
  policy: BucketPolicy;
  cost: number;
  nowMs: number;
  resolve(decision: RateDecision): void;
  reject(error: unknown): void;
}

/**
 * Buckets in a NATS KV bucket, shared by every gateway replica (the distributed mode). A take
 * reads the key, applies `spend`, and writes back only if the revision it read is still the
 * latest (compare-and-set), retrying on a conflict. Takes of one key in one process are
 * batched into one read and one write: a page that fires ten queries at once must not make
 * ten writers race each other for its own bucket.
 */
export class NatsKvBucketStore implements BucketStore {
  private kv: KV | undefined;
  private opening: Promise<KV> | undefined;
  private readonly waiting = new Map<string, PendingTake[]>();
  private readonly flushing = new Map<string, Promise<void>>();
  private readonly bucket: string;
  private readonly maxAttempts: number;

  private constructor(
    private readonly js: JetStreamClient,
    private readonly options: NatsKvBucketStoreOptions,
    private readonly owned: NatsConnection | undefined,
  ) {
    this.bucket = options.bucket ?? 'rate_limits';
    this.maxAttempts = options.maxAttempts ?? 8;
    if (!(Number.isFinite(options.ttlMs) && options.ttlMs >= 1000)) throw new RangeError('ttlMs must be at least 1000');
  }

  /** On a connection the caller owns (and closes). Fails if NATS cannot create or open the bucket. */
  static async open(options: NatsKvBucketStoreOptions & { nc: NatsConnection }): Promise<NatsKvBucketStore> {
    const store = new NatsKvBucketStore(jetstream(options.nc, { timeout: options.requestTimeoutMs ?? 1_000 }), options, undefined);
    await store.bucketKv();
    return store;
  }

  /** On a connection of its own, closed by `close`. */
  static async connect(options: NatsKvBucketStoreOptions & { url: string }): Promise<NatsKvBucketStore> {
    const nc = await connect({ servers: options.url, name: 'storyloom-rate-limits', maxReconnectAttempts: -1, noAsyncTraces: true });
    try {
      const store = new NatsKvBucketStore(jetstream(nc, { timeout: options.requestTimeoutMs ?? 1_000 }), options, nc);
      await store.bucketKv();
      return store;
    } catch (error) {
      await nc.close();
      throw error;
    }
  }

  take(key: string, policy: BucketPolicy, cost: number, nowMs: number): Promise<RateDecision> {
    try {
      assertCost(cost, policy);
    } catch (error) {
      return Promise.reject(error);
    }
    if (fullRefillMs(policy) > this.options.ttlMs) {
      return Promise.reject(new RangeError(`ttlMs ${this.options.ttlMs} is shorter than the ${fullRefillMs(policy)} ms the policy takes to refill`));
    }
    return new Promise<RateDecision>((resolve, reject) => {
      const pending: PendingTake = { policy, cost, nowMs, resolve, reject };
      const queue = this.waiting.get(key);
      if (queue) queue.push(pending);
      else this.waiting.set(key, [pending]);
      if (!this.flushing.has(key)) this.flushing.set(key, this.flush(key));
    });
  }

  /** Settles the takes waiting on `key`, batch after batch, until none are left. */
  private async flush(key: string): Promise<void> {
    // Let the takes made in the same tick join the first batch.
    await Promise.resolve();
    try {
      for (let batch = this.waiting.get(key); batch; batch = this.waiting.get(key)) {
        this.waiting.delete(key);
        await this.settle(key, batch);
      }
    } finally {
      // Synchronous with the loop's last look at `waiting`: a take arriving now starts a new flush.
      this.flushing.delete(key);
    }
  }

  private async settle(key: string, batch: PendingTake[]): Promise<void> {
    const kvKey = encodeKvKey(key);
    for (let attempt = 1; ; attempt++) {
      try {
        const kv = await this.bucketKv();
        const entry = await kv.get(kvKey);
        let state = readState(entry);
        let spent = false;
        const decisions: RateDecision[] = [];
        for (const take of batch) {
          const outcome = spend(state, take.policy, take.cost, take.nowMs);
          decisions.push(outcome.decision);
          if (outcome.decision.allowed) [state, spent] = [outcome.state, true];
        }
        // Refusals spend nothing: a flood that is being refused costs a read, not a write.
        if (spent && state) {
          const value = JSON.stringify({ tokens: state.tokens, at: state.at });
          // update/create carry the expected revision (create: none); the server refuses the
          // write if another replica wrote in between, and we read again. A stale read (a
          // direct get from a lagging cluster peer) costs a retry, never a lost spend.
          if (entry) await kv.update(kvKey, value, entry.revision);
          else await kv.create(kvKey, value);
        }
        batch.forEach((take, i) => take.resolve(decisions[i]!));
        return;
      } catch (error) {
        if (isRevisionConflict(error)) {
          if (attempt < this.maxAttempts) continue;
          // Deny rather than allow: this many lost races means replicas are writing this one
          // key continuously, which is the flood the limiter is for; allowing would turn
          // contention into a way around the limit. Unlike NATS being down (limits per process), it
          // only affects this key's callers.
          for (const take of batch) take.resolve({ allowed: false, remaining: 0, retryAfterMs: Math.ceil((take.cost * 1000) / take.policy.refillPerSecond) });
          return;
        }
        // NATS down, or the stream gone (an operator's delete, a server that lost its store):
        // look for the bucket, and create it if need be, on the next take.
        this.kv = undefined;
        for (const take of batch) take.reject(error);
        return;
      }
    }
  }

  private bucketKv(): Promise<KV> {
    if (this.kv) return Promise.resolve(this.kv);
    this.opening ??= this.createBucket().finally(() => (this.opening = undefined));
    return this.opening;
  }

  private async createBucket(): Promise<KV> {
    // File storage, not memory: a standalone nats-server does not restore memory streams after
    // a restart, and every take would then time out. history 1: only the latest state matters.
    const kv = await new Kvm(this.js).create(this.bucket, { ttl: this.options.ttlMs, history: 1, description: 'gateway rate-limit token buckets' });
    // An existing bucket keeps the TTL it was created with; the latest deployment's policies win.
    const status = await kv.status();
    if (status.ttl !== this.options.ttlMs) {
      const jsm = await this.js.jetstreamManager();
      await jsm.streams.update(status.streamInfo.config.name, { max_age: nanos(this.options.ttlMs) });
    }
    this.kv = kv;
    return kv;
  }

  /** Waits for the takes in flight; closes the connection if the store opened it. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.flushing.values()]);
    if (this.owned) await this.owned.drain();
  }
}

function readState(entry: KvEntry | null): BucketState | undefined {
  if (!entry || entry.operation !== 'PUT') return undefined;
  try {
    const value = entry.json<Partial<BucketState>>();
    if (typeof value.tokens === 'number' && typeof value.at === 'number' && Number.isFinite(value.tokens) && Number.isFinite(value.at)) return { tokens: value.tokens, at: value.at };
  } catch {
    // Not ours or damaged: start a fresh bucket over it.
  }
  return undefined;
}

/**
 * NATS KV keys are `[-/=._A-Za-z0-9]` with dots separating tokens: an IPv6 address (colons) or
 * an arbitrary user id would be refused. base64url stays in that alphabet, has no dots, and can
 * be read back when debugging; an unusually long key is hashed (prefix with a dot: no clash).
 */
export function encodeKvKey(key: string): string {
  const encoded = Buffer.from(key, 'utf8').toString('base64url');
  return encoded.length <= 128 ? encoded : `sha256.${createHash('sha256').update(key).digest('hex')}`;
}

function isRevisionConflict(error: unknown): boolean {
  return (
    error instanceof JetStreamApiError &&
    (error.code === JetStreamApiCodes.StreamWrongLastSequence || error.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

export interface RateLimiterOptions {
  store: BucketStore;
  policies: { user: BucketPolicy; ip: BucketPolicy };
  logger: Logger;
  /**
   * Milliseconds since the epoch. A wall clock, not `performance.now()`: with a shared store,
   * every replica's clock must count from the same origin (NTP keeps them within ms).
   */
  now?: () => number;
  /** Every store failure (NATS down, timeout), for a metric. */
  onStoreError?: (error: unknown) => void;
  /** How long a check may wait for the store before this process limits alone, in memory. */
  timeoutMs?: number;
  /** After a store failure, requests skip the store this long; then one request tries it again. */
  storeRetryMs?: number;
  /** At most one warning per this many ms while the store keeps failing. */
  warnEveryMs?: number;
}

export interface RateLimitedCaller {
  /** The subject of a verified access token; absent (or null) for an anonymous caller. */
  userId?: string | null;
  /** The client's address, from `clientIp`. */
  ip: string;
}

/**
 * Per-user and per-address token buckets. An authenticated caller spends from their own bucket
 * only, not also from their address's: an office or a mobile carrier puts many users behind
 * one address, and they must not throttle each other; the user bucket bounds each identity.
 * Only a verified token's subject may be passed as `userId`, else a caller could dodge the
 * address bucket by inventing ids; a request with an invalid token counts as anonymous.
 * Anonymous callers spend from their address's bucket; IPv6 addresses by /64, the smallest
 * block a home or a host is given, else one client could rotate through 2^64 buckets.
 */
export class RateLimiter {
  private readonly now: () => number;
  private readonly timeoutMs: number;
  private readonly storeRetryMs: number;
  private readonly warnEveryMs: number;
  private skipStoreUntil = Number.NEGATIVE_INFINITY;
  private probing = false;
  private failing = false;
  private lastWarnAt = Number.NEGATIVE_INFINITY;
  private unreportedFailures = 0;
  /** Where buckets live while the store fails: this process's memory. */
  private readonly fallback: MemoryBucketStore;

  constructor(private readonly options: RateLimiterOptions) {
    assertPolicy(options.policies.user, 'policies.user');
    assertPolicy(options.policies.ip, 'policies.ip');
    this.now = options.now ?? Date.now;
    this.fallback = new MemoryBucketStore({ now: this.now });
    this.timeoutMs = options.timeoutMs ?? 250;
    this.storeRetryMs = options.storeRetryMs ?? 2_000;
    this.warnEveryMs = options.warnEveryMs ?? 60_000;
  }

  /** Stops the in-process fallback's sweep; the store is its owner's to close. */
  async close(): Promise<void> {
    await this.fallback.close();
  }

  /** Spends `cost` tokens of the caller's bucket. Rejects (RangeError) only for a cost above the capacity. */
  async check(caller: RateLimitedCaller, cost = 1): Promise<RateDecision> {
    const [key, policy] = caller.userId ? [`u:${caller.userId}`, this.options.policies.user] : [`ip:${ipBucketOf(caller.ip)}`, this.options.policies.ip];
    assertCost(cost, policy);
    const now = this.now();
    // Not closed: a limiter that fails closed takes the whole API down with NATS. While the
    // store fails, each replica limits on its own, in memory (a client spread over n replicas
    // gets up to n times its share); the store is skipped meanwhile (each call would wait out
    // the timeout), and a single request at a time finds out whether it is back.
    const alone = () => this.fallback.take(key, policy, cost, now);
    if (now < this.skipStoreUntil || this.probing) return alone();
    const probe = this.failing;
    if (probe) this.probing = true;
    try {
      const decision = await withinDeadline(this.options.store.take(key, policy, cost, now), this.timeoutMs);
      if (this.failing) {
        this.failing = false;
        this.options.logger.info({ failuresSinceLastLog: this.unreportedFailures }, 'rate-limit store answers again: limiting requests');
        this.unreportedFailures = 0;
      }
      return decision;
    } catch (error) {
      this.storeFailed(error, now);
      return alone();
    } finally {
      if (probe) this.probing = false;
    }
  }

  private storeFailed(error: unknown, now: number): void {
    this.failing = true;
    this.skipStoreUntil = now + this.storeRetryMs;
    this.unreportedFailures += 1;
    try {
      this.options.onStoreError?.(error);
    } catch (hookError) {
      // A metrics hook that throws must not turn a store failure into a failed request.
      this.options.logger.error({ err: hookError }, 'onStoreError failed');
    }
    if (now - this.lastWarnAt < this.warnEveryMs) return;
    this.options.logger.warn({ err: error, failuresSinceLastLog: this.unreportedFailures, retryInMs: this.storeRetryMs }, 'rate-limit store failed: limiting in this process alone');
    this.lastWarnAt = now;
    this.unreportedFailures = 0;
  }
}

/**
 * The client's address. With no trusted proxy, the socket's peer: X-Forwarded-For is whatever
 * the client wrote. Behind `trustedProxies` hops, each proxy appends the address it saw, so the
 * client is the entry `trustedProxies` from the right (1: the last, which the proxy facing
 * the gateway saw); entries left of it are the client's own, unverifiable. Fewer entries than
 * hops: the leftmost. An entry that is not an address: the socket's peer. With
 * `proxyAddresses`, the header is believed only from a peer among them (`proxyBlockList`).
 */
export function clientIp(req: IncomingMessage, trustedProxies: number, proxyAddresses?: BlockList): string {
  const peer = normalizeIp(req.socket.remoteAddress ?? '') ?? 'unknown';
  if (trustedProxies <= 0) return peer;
  // A peer that is not one of the proxies reached the gateway around them: its header is its own.
  if (proxyAddresses && !proxyAddresses.check(peer, isIPv6(peer) ? 'ipv6' : 'ipv4')) return peer;
  const header = req.headers['x-forwarded-for'];
  // Repeated headers are one list in order (RFC 9110 §5.3); node joins them, but say so.
  const hops = (Array.isArray(header) ? header.join(',') : (header ?? ''))
    .split(',')
    .map((hop) => hop.trim())
    .filter((hop) => hop !== '');
  if (hops.length === 0) return peer;
  return normalizeIp(hops[Math.max(0, hops.length - trustedProxies)]!) ?? peer;
}

/** The addresses proxies may call from, as CIDRs (`10.0.0.0/8`, `fc00::/7`). Throws on a bad one. */
export function proxyBlockList(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [address = '', bits, extra] = cidr.split('/');
    const type = isIPv6(address) ? 'ipv6' : 'ipv4';
    if (!isIP(address) || bits === undefined || extra !== undefined || !/^\d+$/.test(bits) || Number(bits) > (type === 'ipv6' ? 128 : 32)) throw new RangeError(`not a CIDR: ${cidr}`);
    list.addSubnet(address, Number(bits), type);
  }
  return list;
}

/** An address as one form: no port, no brackets, IPv4-mapped IPv6 as IPv4, lower case; undefined if not an address. */
function normalizeIp(raw: string): string | undefined {
  let ip = raw.trim().toLowerCase();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(ip);
  if (bracketed) ip = bracketed[1]!;
  else if (/^\d+\.\d+\.\d+\.\d+:\d+$/.test(ip)) ip = ip.slice(0, ip.lastIndexOf(':'));
  if (ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4) ip = ip.slice(7);
  return isIP(ip) ? ip : undefined;
}

/** The bucket an address spends from: itself for IPv4, its /64 for IPv6. */
export function ipBucketOf(ip: string): string {
  if (!isIPv6(ip)) return ip;
  return `${ipv6Groups(ip).slice(0, 4).join(':')}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address, in hex without leading zeros. */
function ipv6Groups(ip: string): string[] {
  let address = ip.split('%')[0]!.toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(address);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    address = `${address.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = address.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const zeros = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...zeros, ...right].map((group) => parseInt(group, 16).toString(16));
}
