/** The main thread's end of the clients' worker thread (bench/subscriptions-clients.ts). */
import { Worker } from 'node:worker_threads';
import type { ClientsData, FromClients, ToClients } from './subscriptions-clients.js';

export interface Clients {
  worker: Worker;
  /** Sends `message` (if any) and waits for the next reply of type `reply`. */
  ask<K extends FromClients['type']>(message: ToClients | null, reply: K, timeoutMs: number): Promise<Extract<FromClients, { type: K }>>;
}

/** Starts the clients' thread; a failure there (or its exit) rejects every wait. */
export function startClients(data: ClientsData, onProgress: (subscribed: number) => void): Clients {
  // tsx's loader does not reach a worker's entry module under Node 20 (ERR_UNKNOWN_FILE_EXTENSION),
  // so the entry is a line of JavaScript that loads the TypeScript through tsx's API.
  const entry = new URL('./subscriptions-clients.ts', import.meta.url).href;
  const api = import.meta.resolve('tsx/esm/api');
  const worker = new Worker(`import(${JSON.stringify(api)}).then(({ tsImport }) => tsImport(${JSON.stringify(entry)}, ${JSON.stringify(entry)}))`, { eval: true, workerData: data });
  const pending: FromClients[] = [];
  const waiting = new Map<string, { resolve: (message: FromClients) => void; reject: (error: Error) => void }>();
  let failure: Error | null = null;
  const failAll = (error: Error) => {
    failure ??= error;
    for (const wait of waiting.values()) wait.reject(failure);
    waiting.clear();
  };
  worker.on('message', (message: FromClients) => {
    if (message.type === 'progress') return onProgress(message.subscribed);
    if (message.type === 'failed') return failAll(new Error(`the clients failed: ${message.error}`));
    const wait = waiting.get(message.type);
    if (!wait) return void pending.push(message);
    waiting.delete(message.type);
    wait.resolve(message);
  });
  worker.on('error', failAll);
  worker.on('exit', (code) => failAll(new Error(`the clients' thread exited (${code})`)));
  return {
    worker,
    async ask<K extends FromClients['type']>(message: ToClients | null, reply: K, timeoutMs: number): Promise<Extract<FromClients, { type: K }>> {
      if (message) worker.postMessage(message);
      const index = pending.findIndex((m) => m.type === reply);
      if (index >= 0) return pending.splice(index, 1)[0] as Extract<FromClients, { type: K }>;
      if (failure) throw failure;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(reply);
          reject(new Error(`no '${reply}' from the clients within ${timeoutMs} ms`));
        }, timeoutMs);
        const settle = <T>(then: (value: T) => void) => (value: T) => (clearTimeout(timer), then(value));
        waiting.set(reply, { resolve: settle(resolve as (m: FromClients) => void), reject: settle(reject) });
      });
    },
  };
}
