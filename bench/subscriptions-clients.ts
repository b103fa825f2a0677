/**
 * The subscribers of the subscriptions bench (bench/subscriptions.ts), run in a worker thread:
 * a worker has its own V8 heap, so the main thread's heap holds the gateway's side only, and
 * its own event loop, so the clients do not queue behind the gateway (they still share the
 * machine's cores). Each subscription records when each (job, round) arrived, on a clock both
 * threads share (`performance.timeOrigin + performance.now()`), and sends the records back.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

export interface ClientsData {
  /** The gateway's ws:// URL. */
  url: string;
  /** The NarrationProgress operation of ../shared/clients/media.graphql. */
  query: string;
  /** One per subscriber; `job` is the job's index, the key of the main thread's publish times. */
  subscriptions: { token: string; jobId: string; job: number }[];
  perConnection: number;
  /** Connections opening at once: the gateway closes one that is not initialised within 3 s. */
  connectConcurrency: number;
  rounds: number;
}

export type ToClients = { type: 'ping'; sent: number } | { type: 'warm-up' } | { type: 'subscribe' } | { type: 'collect'; waitMs: number };

export type FromClients =
  | { type: 'pong'; sent: number; at: number }
  | { type: 'warmed-up'; errors: string[] }
  | { type: 'progress'; subscribed: number }
  | { type: 'subscribed'; subscribed: number; connections: number; errors: string[] }
  /** `records`: (job index, round, receipt time) triples; round 0 is the state when subscribing. */
  | {
      type: 'collected';
      records: Float64Array;
      /** Distinct (subscription, round) deliveries; `skipped` = expected - received. */
      received: number;
      skipped: number;
      /** Subscriptions that never got the final round: a lost delivery, not a coalesced one. */
      withoutFinal: number;
      outOfOrder: number;
      unexpected: number;
      errors: string[];
    }
  | { type: 'closed' }
  | { type: 'failed'; error: string };

const data = workerData as ClientsData;
const port = parentPort!;
const now = () => performance.timeOrigin + performance.now();
const send = (message: FromClients, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);

interface Tracked {
  job: number;
  /** Which rounds arrived (index = round); a round arriving twice counts once. */
  seen: Uint8Array;
  distinct: number;
  /** The latest round received: deliveries must never go back. */
  last: number;
}

const clients: Client[] = [];
const tracked: Tracked[] = [];
const errors: string[] = [];
/** Flat (job, round, time) triples; grown as deliveries arrive. */
let records = new Float64Array(3 * 1024);
let recorded = 0;
/** Deliveries that are not a round of this bench (a completion, a state we never wrote). */
let unexpected = 0;
/** Deliveries of a round older than one delivered before. */
let outOfOrder = 0;
/** Subscriptions that have the final round: after it nothing more comes. */
let final = 0;
let allFinal: (() => void) | null = null;

function record(job: number, round: number, at: number): void {
  if (recorded * 3 + 3 > records.length) {
    const grown = new Float64Array(records.length * 2);
    grown.set(records);
    records = grown;
  }
  records.set([job, round, at], recorded * 3);
  recorded++;
}

function noteError(error: unknown): void {
  const message = Array.isArray(error) ? error.map((e: { message?: string }) => e.message).join('; ') : error instanceof Error ? error.message : String((error as { reason?: string })?.reason ?? error);
  if (errors.length < 20) errors.push(message);
}

function connect(token: string): Client {
  const client = createClient({ url: data.url, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: 0, lazy: true });
  clients.push(client);
  return client;
}

/** Subscribes; resolves at the first delivery (the job's state then) or at a refusal. */
function follow(client: Client, sub: ClientsData['subscriptions'][number], track: boolean): Promise<void> {
  return new Promise((resolve) => {
    const state: Tracked = { job: sub.job, seen: new Uint8Array(data.rounds + 1), distinct: 0, last: -1 };
    if (track) tracked.push(state);
    client.subscribe(
      { query: data.query, variables: { jobId: sub.jobId } },
      {
        next: (value) => {
          const at = now();
          resolve();
          if (!track) return;
          const progress = (value.data?.narrationJobUpdated as { progress?: number } | undefined)?.progress;
          const round = typeof progress === 'number' ? Math.round(progress * data.rounds) : -1;
          if (round < 0 || round > data.rounds || value.errors) {
            unexpected++;
            return;
          }
          record(sub.job, round, at);
          if (round < state.last) outOfOrder++;
          state.last = Math.max(state.last, round);
          if (state.seen[round]) return;
          state.seen[round] = 1;
          state.distinct++;
          if (round === data.rounds && ++final === tracked.length) allFinal?.();
        },
        error: (error) => {
          noteError(error);
          resolve();
        },
        complete: () => {
          // The jobs never reach a terminal state: a completion before dispose is unexpected.
          if (track) unexpected++;
          resolve();
        },
      },
    );
  });
}

async function warmUp(): Promise<void> {
  // One subscription opened and closed first, so the gateway's one-off costs (query plans,
  // caches) are in the heap before the main thread measures its baseline.
  const client = createClient({ url: data.url, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${data.subscriptions[0]!.token}` }, retryAttempts: 0, lazy: true });
  await follow(client, data.subscriptions[0]!, false);
  await client.dispose();
  send({ type: 'warmed-up', errors: [...errors] });
}

async function subscribeAll(): Promise<void> {
  // A connection carries one identity: group subscriptions by token, then cut into connections.
  const byToken = new Map<string, ClientsData['subscriptions']>();
  for (const sub of data.subscriptions) byToken.set(sub.token, [...(byToken.get(sub.token) ?? []), sub]);
  const connections: ClientsData['subscriptions'][] = [];
  for (const subs of byToken.values()) for (let i = 0; i < subs.length; i += data.perConnection) connections.push(subs.slice(i, i + data.perConnection));
  let subscribed = 0;
  let next = 0;
  let lastReport = 0;
  const lane = async () => {
    while (next < connections.length) {
      const subs = connections[next++]!;
      const client = connect(subs[0]!.token);
      await Promise.all(subs.map((sub) => follow(client, sub, true)));
      subscribed += subs.length;
      if (now() - lastReport > 1000) {
        lastReport = now();
        send({ type: 'progress', subscribed });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(data.connectConcurrency, connections.length) }, lane));
  send({ type: 'subscribed', subscribed, connections: connections.length, errors: [...errors] });
}

async function collect(waitMs: number): Promise<void> {
  // Waits until every subscription has the final round (deliveries come in order, so nothing
  // else can follow it), or for waitMs at most.
  if (final < tracked.length) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, waitMs);
      allFinal = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
  const expected = tracked.length * (data.rounds + 1);
  const received = tracked.reduce((sum, t) => sum + t.distinct, 0);
  const out = records.slice(0, recorded * 3);
  const withoutFinal = tracked.length - final;
  send({ type: 'collected', records: out, received, skipped: expected - received, withoutFinal, outOfOrder, unexpected, errors: [...errors] }, [out.buffer]);
  await Promise.all(clients.map((client) => client.dispose()));
  send({ type: 'closed' });
}

port.on('message', (message: ToClients) => {
  const fail = (error: unknown) => send({ type: 'failed', error: error instanceof Error ? (error.stack ?? error.message) : String(error) });
  if (message.type === 'ping') send({ type: 'pong', sent: message.sent, at: now() });
  else if (message.type === 'warm-up') warmUp().catch(fail);
  else if (message.type === 'subscribe') subscribeAll().catch(fail);
  else collect(message.waitMs).catch(fail);
});
