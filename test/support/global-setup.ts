import type { TestProject } from 'vitest/node';
import { startNatsServer } from './nats-server.js';
import { createTestDatabase } from './database.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A nats-server with JetStream, spawned for this run on a free port (or NATS_URL). */
    natsUrl: string;
    /** A PostgreSQL server URL whose database was created fresh for this run. */
    databaseUrl: string;
  }
}

/**
 * Starts what every test needs once per run: a fresh PostgreSQL database (dropped afterwards)
 * and a nats-server with a temporary JetStream store. TEST_NATS_URL reuses a running server.
 */
export default async function setup(project: TestProject) {
  const nats = process.env.TEST_NATS_URL ? { url: process.env.TEST_NATS_URL, stop: async () => {} } : await startNatsServer();
  const db = await createTestDatabase();
  project.provide('natsUrl', nats.url);
  project.provide('databaseUrl', db.url);
  return async () => {
    await db.drop();
    await nats.stop();
  };
}
