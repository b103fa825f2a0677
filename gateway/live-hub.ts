import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import type { Caller } from '../platform/internal-auth.js';
import type { LiveBus } from '../platform/live/live.js';
import type { Logger } from '../platform/log.js';

/** What a subscription fetches on each live event: the query (aliased `_live`), its variables, as whom. */
export interface LiveRequest {
  /** Live subject without the bus prefix: `NarrationJob.<id>`. */
  subject: string;
  /** A query whose one root field is aliased `_live` and selects `_liveTerminal` besides the subscriber's fields. */
  document: string;
  variables: Record<string, unknown>;
  caller: Caller;
  correlationId: string;
  /** Values of `_liveTerminal` after which the subscription is complete. */
  terminalValues: readonly string[];
}

export interface FetchResult {
  data?: Record<string, unknown> | null;
  errors?: readonly GraphQLFormattedError[];
}

export type LiveFetch = (request: LiveRequest) => Promise<FetchResult>;

/** What a subscriber receives: the fetched entity under the subscriber's own response key. */
export interface Delivery {
  data: Record<string, unknown> | null;
  // GraphQLError instances: graphql-ws serialises them with toJSON().
  errors?: GraphQLError[];
}

/** After a failed fetch, the next try (while anyone still follows the group). */
const RETRY_MS = [250, 1000, 2000, 5000];

export const LIVE_ALIAS = '_live';
export const TERMINAL_ALIAS = '_liveTerminal';

/**
 * Shares the work of subscriptions: one bus subscription per subject, and one fetch per live
 * event for every group of identical subscriptions (same subject, query, variables and caller:
 * the caller is part of the key because what a fetch may return depends on who asks). A burst
 * of events while a fetch runs costs one more fetch, not one each: the group fetches again
 * once, and that fetch sees the latest state.
 */
export class LiveHub {
  private readonly topics = new Map<string, { off: () => void; groups: Set<Group> }>();
  private readonly groups = new Map<string, Group>();
  /** Fetches made so far (tests and the benchmark read it). */
  fetches = 0;

  constructor(
    private readonly bus: LiveBus,
    private readonly fetch: LiveFetch,
    private readonly logger: Logger,
  ) {}

  /**
   * Joins (or starts) the group of `request`. Resolves once the subscriber has its first
   * delivery, the entity's current state; or with the errors that refuse the subscription
   * (not allowed to read it, no such entity), in which case nothing is left behind.
   */
  async join(request: LiveRequest, responseKey: string): Promise<{ subscriber: Subscriber } | { errors: GraphQLFormattedError[] }> {
    // The guest scope too: two guests have no userId, and may read different templates.
    // (onConnect admits no guest today; this keeps the key whole if that changes.)
    const { caller } = request;
    const key = JSON.stringify([request.subject, request.document, request.variables, caller.userId, [...caller.roles].sort(), caller.guest ? [caller.guest.participantId, caller.guest.templateId] : null]);
    let group = this.groups.get(key);
    if (!group) {
      group = new Group(key, request, this);
      this.groups.set(key, group);
      // Listening before the first fetch: an event during that fetch is not missed.
      this.topicOf(request.subject).groups.add(group);
    }
    const subscriber = new Subscriber(group, responseKey);
    group.subscribers.add(subscriber);
    try {
      // A fetch under way (or the last result) is the current state for a newcomer: joining
      // does not cost the group a fetch of its own.
      if (group.fetching) await group.fetching;
      else if (!group.last) await group.refresh();
    } catch (error) {
      subscriber.close();
      throw error;
    }
    const first = group.last!;
    const entity = first.data?.[LIVE_ALIAS];
    if (entity === null || entity === undefined) {
      subscriber.close();
      return { errors: first.errors?.length ? [...first.errors] : [{ message: 'There is nothing to follow under these arguments', extensions: { code: 'NOT_FOUND' } }] };
    }
    subscriber.start(first, group.isTerminal(first));
    return { subscriber };
  }

  /** Open groups and bus subscriptions: both must fall to zero when every client has gone. */
  stats(): { groups: number; subjects: number; subscribers: number } {
    let subscribers = 0;
    for (const group of this.groups.values()) subscribers += group.subscribers.size;
    return { groups: this.groups.size, subjects: this.topics.size, subscribers };
  }

  /** @internal */
  async fetchFor(group: Group): Promise<FetchResult> {
    this.fetches++;
    return this.fetch(group.request);
  }

  /** @internal: the group has no subscribers left. */
  drop(group: Group): void {
    if (this.groups.get(group.key) !== group) return;
    this.groups.delete(group.key);
    const topic = this.topics.get(group.request.subject);
    if (!topic) return;
    topic.groups.delete(group);
    if (!topic.groups.size) {
      topic.off();
      this.topics.delete(group.request.subject);
    }
  }

  private topicOf(subject: string) {
    let topic = this.topics.get(subject);
    if (!topic) {
      const groups = new Set<Group>();
      const off = this.bus.subscribe(subject, () => {
        for (const group of [...groups]) {
          group.refresh().catch((error: unknown) => this.logger.warn({ err: error, subject }, 'live fetch failed'));
        }
      });
      topic = { off, groups };
      this.topics.set(subject, topic);
    }
    return topic;
  }
}

class Group {
  readonly subscribers = new Set<Subscriber>();
  last: FetchResult | null = null;
  private lastJson = '';
  fetching: Promise<void> | null = null;
  private again = false;

  constructor(
    readonly key: string,
    readonly request: LiveRequest,
    private readonly hub: LiveHub,
  ) {}

  private failures = 0;
  private retry: NodeJS.Timeout | null = null;

  refresh(): Promise<void> {
    if (this.fetching) {
      this.again = true;
      return this.fetching;
    }
    this.fetching = (async () => {
      do {
        this.again = false;
        this.apply(await this.hub.fetchFor(this));
        this.failures = 0;
      } while (this.again && this.subscribers.size);
    })()
      .catch((error: unknown) => {
        // An update may have been missed with this fetch: try again for those still following,
        // rather than leave them at a state that is no longer true.
        this.again = false;
        if (this.subscribers.size && !this.retry) {
          const delay = RETRY_MS[Math.min(this.failures++, RETRY_MS.length - 1)]!;
          this.retry = setTimeout(() => {
            this.retry = null;
            if (this.subscribers.size) this.refresh().catch(() => undefined);
          }, delay);
          this.retry.unref();
        }
        throw error;
      })
      .finally(() => {
        this.fetching = null;
      });
    return this.fetching;
  }

  isTerminal(result: FetchResult): boolean {
    const entity = result.data?.[LIVE_ALIAS] as Record<string, unknown> | null | undefined;
    return typeof entity?.[TERMINAL_ALIAS] === 'string' && this.request.terminalValues.includes(entity[TERMINAL_ALIAS] as string);
  }

  private apply(result: FetchResult): void {
    const json = JSON.stringify(result);
    if (json === this.lastJson) return;
    this.lastJson = json;
    this.last = result;
    const terminal = this.isTerminal(result);
    for (const subscriber of [...this.subscribers]) subscriber.deliver(result, terminal);
    if (terminal) this.hub.drop(this);
  }

  leave(subscriber: Subscriber): void {
    this.subscribers.delete(subscriber);
    if (this.subscribers.size) return;
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    this.hub.drop(this);
  }
}

/** One client subscription: an async iterator of deliveries that ends after a terminal state. */
export class Subscriber implements AsyncIterableIterator<Delivery> {
  private readonly queue: Delivery[] = [];
  private waiting: ((result: IteratorResult<Delivery>) => void) | null = null;
  private started = false;
  /** Nothing more will be pushed; the iterator ends once the queue is drained. */
  private done = false;
  private left = false;
  private lastJson = '';

  constructor(
    private readonly group: Group,
    private readonly responseKey: string,
  ) {}

  /** @internal: the first delivery, the state when the subscriber joined. */
  start(result: FetchResult, terminal: boolean): void {
    this.started = true;
    this.deliver(result, terminal);
  }

  /** @internal */
  deliver(result: FetchResult, terminal: boolean): void {
    if (!this.started || this.done) return;
    const delivery = this.shape(result);
    const json = JSON.stringify(delivery);
    if (json !== this.lastJson) {
      this.lastJson = json;
      this.push(delivery);
    }
    if (terminal) this.end();
  }

  /** Leaves the group at once (the client completed, or disconnected). */
  close(): void {
    this.queue.length = 0;
    this.end();
  }

  next(): Promise<IteratorResult<Delivery>> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve({ value: queued, done: false });
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => (this.waiting = resolve));
  }

  async return(): Promise<IteratorResult<Delivery>> {
    this.close();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Delivery> {
    return this;
  }

  private push(delivery: Delivery): void {
    const waiting = this.waiting;
    this.waiting = null;
    if (waiting) waiting({ value: delivery, done: false });
    else this.queue.push(delivery);
  }

  private end(): void {
    this.done = true;
    if (!this.left) {
      this.left = true;
      this.group.leave(this);
    }
    if (!this.queue.length && this.waiting) {
      const waiting = this.waiting;
      this.waiting = null;
      waiting({ value: undefined, done: true });
    }
  }

  /** The group's result under this subscriber's response key, without the terminal marker. */
  private shape(result: FetchResult): Delivery {
    const entity = result.data?.[LIVE_ALIAS];
    let value: unknown = entity;
    if (entity && typeof entity === 'object') {
      const { [TERMINAL_ALIAS]: _terminal, ...rest } = entity as Record<string, unknown>;
      value = rest;
    }
    const errors = result.errors?.map(
      (error) =>
        new GraphQLError(error.message, {
          path: error.path?.map((segment, i) => (i === 0 && segment === LIVE_ALIAS ? this.responseKey : segment)),
          extensions: error.extensions,
        }),
    );
    // A null entity under a non-null field nulls the whole result, as GraphQL would.
    return { data: entity === null || entity === undefined ? null : { [this.responseKey]: value }, ...(errors?.length ? { errors } : {}) };
  }
}
