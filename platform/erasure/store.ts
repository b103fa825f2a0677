import { randomUUID } from 'node:crypto';
import type { EntityManager, EntitySchema, RequiredEntityData } from '@mikro-orm/postgresql';
import { tableOf } from '../db/tables.js';
import { unauthenticated } from '../errors.js';
import type { ErasureCleanup } from './cleanup.entity.js';

/**
 * How long after an erasure the files of the jobs it found open are deleted once more. A run in
 * flight may store a file after the erasure committed, before its next guarded write finds the
 * job gone (it then deletes the file itself, unless its process dies first); one part, one put or
 * one lease period take far less than this.
 */
export const LATE_SWEEP_MS = 15 * 60_000;

/** What the store and the sweeper keep of a row; the rest is the work. */
type Bookkeeping = 'id' | 'userId' | 'dueAt' | 'attempts' | 'lastError' | 'createdAt';

/** Work for the ErasureSweeper: due at once unless `dueAt` says when. */
export type CleanupWork<Row extends ErasureCleanup> = Omit<Row, Bookkeeping> & { dueAt?: Date };

/** A stored file to delete (through platform/storage): the work every step has. */
export interface BlobCleanup {
  kind: 'BLOB';
  target: string;
  provider: null;
  dueAt?: Date;
}

export const blob = (key: string, dueAt?: Date): BlobCleanup => ({ kind: 'BLOB', target: key, provider: null, dueAt });

/**
 * The files of the jobs an erasure deleted: every key now, and the keys of a job that was open
 * (QUEUED or RUNNING) once more after LATE_SWEEP_MS. Keys never written cost a delete of nothing.
 */
export function jobBlobs(jobs: readonly { status: string; keys: readonly string[] }[], now = Date.now()): BlobCleanup[] {
  const late = new Date(now + LATE_SWEEP_MS);
  return [
    ...jobs.flatMap((job) => job.keys.map((key) => blob(key))),
    ...jobs.filter((job) => job.status === 'QUEUED' || job.status === 'RUNNING').flatMap((job) => job.keys.map((key) => blob(key, late))),
  ];
}

/**
 * What the erasure of a user shares, in one step of the saga, with the writes that create data
 * for that user there: a lock per user, taken first by both, and the record of erased accounts.
 * A write either commits before the erasure takes the lock (and the erasure deletes what it
 * wrote) or finds the account erased and is refused, so nothing is created for a user after
 * their erasure with an access token that is still valid. And the work the erasure leaves to
 * the ErasureSweeper, recorded in its transaction.
 */
export interface ErasureStore<Row extends ErasureCleanup> {
  /** The user's lock, until the transaction ends. */
  lockUser(em: EntityManager, userId: string): Promise<void>;
  /** The lock, then UNAUTHENTICATED if the account was erased: the first step of every write that creates data for the user. */
  lockLiveUser(em: EntityManager, userId: string): Promise<void>;
  /** The lock, then the account recorded as erased as of `at`: the first step of the erasure. */
  beginErasure(em: EntityManager, userId: string, at: Date): Promise<void>;
  /** Records work for the ErasureSweeper in the caller's transaction. */
  recordCleanup(em: EntityManager, userId: string, work: readonly (BlobCleanup | CleanupWork<Row>)[]): Promise<void>;
}

export function erasureStore<Row extends ErasureCleanup>(options: {
  /** The step's erasure_cleanup entity (erasureCleanupEntity). */
  entity: EntitySchema<Row>;
  /** The user's lock, in the step's own key space (one lock per user and step). */
  lockKey(userId: string): string;
}): ErasureStore<Row> {
  const execute = (em: EntityManager, sql: string, params: unknown[]) => em.getConnection().execute(sql, params, 'all', em.getTransactionContext());
  const lockUser = async (em: EntityManager, userId: string) => void (await execute(em, 'select pg_advisory_xact_lock(hashtext(?))', [options.lockKey(userId)]));
  return {
    lockUser,
    async lockLiveUser(em, userId) {
      await lockUser(em, userId);
      const rows = await execute(em, `select 1 from ${tableOf(em, 'erased_user')} where "user_id" = ?`, [userId]);
      if (rows.length) throw unauthenticated('This account has been deleted');
    },
    async beginErasure(em, userId, at) {
      await lockUser(em, userId);
      await execute(em, `insert into ${tableOf(em, 'erased_user')} ("user_id", "erased_at") values (?, ?) on conflict do nothing`, [userId, at]);
    },
    async recordCleanup(em, userId, work) {
      const now = new Date();
      const rows = work.map(({ dueAt, ...what }) => ({ ...what, id: randomUUID(), userId, dueAt: dueAt ?? now, attempts: 0, lastError: null, createdAt: now }) as unknown as RequiredEntityData<Row>);
      // In slices: a statement takes at most 65,535 parameters.
      for (let start = 0; start < rows.length; start += 1000) await em.insertMany<Row>(options.entity, rows.slice(start, start + 1000));
    },
  };
}
