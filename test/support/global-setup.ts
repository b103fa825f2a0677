import type { TestProject } from 'vitest/node';
import { startNatsServer } from './nats-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A nats-server with JetStream, spawned for this run on a free port (or TEST_NATS_URL). */
    natsUrl: string;
  }
}

/**
 * Starts the nats-server every JetStream test shares, once per run, with a temporary store.
 * Databases are per stack (test/support/database.ts): each end-to-end file gets a fresh one.
 */
export default async function setup(project: TestProject) {
  const nats = process.env.TEST_NATS_URL ? { url: process.env.TEST_NATS_URL, stop: async () => {} } : await startNatsServer();
  project.provide('natsUrl', nats.url);
  return () => nats.stop();
}
