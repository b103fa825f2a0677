import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MikroORM } from '@mikro-orm/postgresql';
import { describe, expect, it } from 'vitest';
import { tableOf } from '../db/tables.js';
import { EventConsumer } from '../events/consumer.js';
import type { ConsumerDefinition } from '../events/consumer.types.js';
import { createEnvelope, type EventEnvelope } from '../events/envelope.js';
import { USER_DELETED, USER_ERASURE_COMPLETED, USER_ERASURE_REQUESTED } from '../events/erasure.js';
import type { EventTransport } from '../events/transport.js';
import type { Logger } from '../log.js';
import { LocalDiskStorage } from '../storage/local.js';
import type { BlobStorage } from '../storage/storage.js';
import { ERASURE_CLEANUP_TABLE } from './cleanup.entity.js';

/** A local store in a folder of its own that records what is done to it, for a step's integration tests. */
export interface RecordingStorage {
  storage: BlobStorage;
  /** What was done to the store, in order: `put <key>` (before the put), `delete <key>` (after the delete). */
  ops: string[];
  /** Files under `prefix` in the store (relative paths, sidecars included), sorted. */
  filesUnder(prefix: string): Promise<string[]>;
  /** Removes the folder. */
  close(): Promise<void>;
}

export async function recordingStorage(step: string): Promise<RecordingStorage> {
  const root = await mkdtemp(join(tmpdir(), `${step}-erasure-`));
  const disk = new LocalDiskStorage({ root, publicBaseUrl: `http://127.0.0.1:4000/media/${step}`, secret: randomBytes(32).toString('base64url') });
  const ops: string[] = [];
  const storage: BlobStorage = {
    kind: disk.kind,
    put: (key, body, options) => {
      ops.push(`put ${key}`);
      return disk.put(key, body, options);
    },
    read: (key) => disk.read(key),
    head: (key) => disk.head(key),
    async delete(key) {
      await disk.delete(key);
      ops.push(`delete ${key}`);
    },
    downloadUrl: (key, options) => disk.downloadUrl(key, options),
  };
  return {
    storage,
    ops,
    filesUnder: (prefix) => filesUnder(root, prefix),
    close: () => rm(root, { recursive: true, force: true }),
  };
}

/** Files under `prefix` in a local store kept in `root` (paths relative to `root`, sidecars included), sorted. */
export async function filesUnder(root: string, prefix: string): Promise<string[]> {
  try {
    const entries = await readdir(join(root, prefix), { recursive: true, withFileTypes: true });
    return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(root.length + 1)).sort();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

/** A step's erasure consumer, handed events directly as its transport would (inbox and outbox included). */
export interface ErasureStepDriver {
  userDeleted(userId: string): EventEnvelope;
  /** Identity asking `services` again, as its `attempt`th request. */
  erasureRequested(userId: string, services: string[], attempt?: number): EventEnvelope;
  /** Hands the event to the consumer, which must finish it. */
  deliver(event: EventEnvelope): Promise<void>;
  /** The step's reports on the user, oldest first. */
  reports(userId: string): Promise<EventEnvelope[]>;
  /** How many rows of the user's erasure wait for the sweeper. */
  pendingCleanup(userId: string): Promise<number>;
}

export function erasureStepDriver(options: { step: string; orm: MikroORM; definition: ConsumerDefinition; logger: Logger }): ErasureStepDriver {
  const { step, orm, definition, logger } = options;
  // The transport is not used: the driver hands events to the consumer as the transport would.
  const consumer = new EventConsumer({ definition, orm, transport: {} as EventTransport, logger, serviceName: step });
  const sql = <T>(query: string, params: unknown[]) => orm.em.fork().getConnection().execute<T[]>(query, params);
  const from = { serviceName: 'identity' };
  return {
    userDeleted: (userId) => createEnvelope({ type: USER_DELETED, userId, payload: { userId } }, { ...from, correlationId: `corr-${userId}` }),
    erasureRequested: (userId, services, attempt = 2) =>
      createEnvelope({ type: USER_ERASURE_REQUESTED, userId, payload: { userId, services, attempt, requestedAt: new Date().toISOString() } }, { ...from, correlationId: `corr-${userId}` }),
    async deliver(event) {
      expect(await consumer.handleBatch([{ event, deliveryCount: 1, sequence: 1 }])).toEqual({ done: 1 });
    },
    async reports(userId) {
      const rows = await sql<{ envelope: EventEnvelope }>(`select envelope from ${tableOf(orm.em, 'outbox')} where type = ? and envelope->>'userId' = ? order by created_at, id`, [USER_ERASURE_COMPLETED, userId]);
      return rows.map((r) => r.envelope);
    },
    async pendingCleanup(userId) {
      const [row] = await sql<{ count: number }>(`select count(*)::int as count from ${tableOf(orm.em, ERASURE_CLEANUP_TABLE)} where user_id = ?`, [userId]);
      return row!.count;
    },
  };
}

/** What the contract needs of a step, read once its test file's beforeAll has run. */
export interface ErasureStepSubject<Holdings> {
  driver: ErasureStepDriver;
  sweeper: { sweepDue(): Promise<number> };
  /** A user holding data here (rows and files), and what the step holds of them. */
  member(): Promise<{ userId: string; holdings(): Promise<Holdings> }>;
  /** What `holdings` reads once the user is erased and the sweeper is done. */
  nothing: Holdings;
}

/**
 * What every step of the user deletion saga promises (platform/events/erasure.ts): asked again
 * (a redelivery, a second user.deleted, identity's request), it finds nothing left and reports
 * each time a new event asks; it answers no request that does not name it.
 */
export function erasureStepContract<Holdings>(step: string, subject: () => ErasureStepSubject<Holdings>): void {
  describe(`${step}'s step of the user deletion saga`, () => {
    it('finds nothing left when asked again, reports each time, and answers no request that does not name it', async () => {
      const { driver, sweeper, member, nothing } = subject();
      const cy = await member();
      const first = driver.userDeleted(cy.userId);
      await driver.deliver(first);
      await sweeper.sweepDue();
      // The same event again (a redelivery) is the inbox's: no second handling, no second report.
      await driver.deliver(first);
      expect(await driver.reports(cy.userId)).toEqual([expect.objectContaining({ serviceName: step, userId: cy.userId, payload: { userId: cy.userId, service: step } })]);
      // A second user.deleted, and identity asking again: nothing left, and a report each time.
      await driver.deliver(driver.userDeleted(cy.userId));
      await driver.deliver(driver.erasureRequested(cy.userId, ['another-step', step]));
      expect(await driver.reports(cy.userId)).toHaveLength(3);
      expect(await driver.pendingCleanup(cy.userId)).toBe(0);
      expect(await sweeper.sweepDue()).toBe(0);
      await driver.deliver(driver.erasureRequested(cy.userId, ['another-step'], 3));
      expect(await driver.reports(cy.userId)).toHaveLength(3);
      expect(await cy.holdings()).toEqual(nothing);
    });
  });
}
