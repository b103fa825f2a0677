import type { EntitySchema, MikroORM } from '@mikro-orm/postgresql';
import { tableOf } from '../db/tables.js';
import { PollLoop } from '../jobs/poll-loop.js';
import type { Logger } from '../log.js';
import type { BlobStorage } from '../storage/storage.js';
import { ERASURE_CLEANUP_TABLE, type ErasureCleanup } from './cleanup.entity.js';

/** One kind of a step's provider work: how it is done, and when it is given up on. */
export interface ProviderCleanup<Row extends ErasureCleanup> {
  /** Does it. Idempotent: a row may be done twice (a sweeper that died after the call, before the row went). */
  perform(row: Row, context: { signal: AbortSignal; log: Logger }): Promise<void>;
  /** Tries before the row is given up on (and deleted), weighed against what the provider does with it meanwhile. */
  maxAttempts: number;
  /** What is logged then: `error` for something left at the provider, `warn` for something that ends there by itself. */
  givenUp: { level: 'warn' | 'error'; message: string };
}

export interface ErasureSweeperOptions<Row extends ErasureCleanup> {
  orm: MikroORM;
  /** The step's erasure_cleanup entity (erasureCleanupEntity): the columns a row is read with. */
  entity: EntitySchema<Row>;
  storage: BlobStorage;
  /** Each kind of provider work the step records, besides BLOB. */
  providerWork: { [Kind in Exclude<Row['kind'], 'BLOB'>]: ProviderCleanup<Row> };
  logger: Logger;
  /** The step, for the logs: its worker is `<step>-erasure-sweeper`. */
  step: string;
  /** How often it looks for due work (default 2 s). */
  everyMs?: number;
}

/** Rows taken at a time; their deletions run side by side. */
const BATCH = 20;
/** How long a sweeper holds the rows it took: one that dies leaves them due again after this. */
const HOLD_MS = 5 * 60_000;
/** Waits after a failure: doubling from this, up to an hour. */
const RETRY_BASE_MS = 10_000;
const RETRY_MAX_MS = 3600_000;

/**
 * Does what erasures recorded in erasure_cleanup and could not do in their transaction: deletes
 * the stored files (BLOB rows, never given up on: they hold the user's own content, and our store
 * is ours to fix), and does the step's provider work (deleting a cloned voice, cancelling a task)
 * with the handler the step gives for its kind.
 *
 * Replicas share the rows: each takes a batch with `for update skip locked` and pushes its due
 * time ahead while it works; a failure is tried again later, with a doubling wait.
 */
export class ErasureSweeper<Row extends ErasureCleanup> {
  private readonly log: Logger;
  private readonly loop: PollLoop;
  private stopping = false;
  /** One controller per provider call in flight, aborted by stop(): never a signal shared by calls. */
  private readonly calls = new Set<AbortController>();
  private columns: string | null = null;

  constructor(private readonly options: ErasureSweeperOptions<Row>) {
    this.log = options.logger.child({ worker: `${options.step}-erasure-sweeper` });
    this.loop = new PollLoop(() => this.sweepDue().then(() => undefined), {
      everyMs: options.everyMs ?? 2_000,
      onError: (error) => this.log.warn({ err: error }, 'could not sweep what erasures left; trying at the next poll'),
    });
  }

  start(): void {
    this.stopping = false;
    this.loop.start();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const call of this.calls) call.abort(new Error('the erasure sweeper is stopping'));
    await this.loop.stop();
  }

  /** Does everything due now; returns how many rows it finished (done, or given up on). */
  async sweepDue(): Promise<number> {
    let finished = 0;
    // A row taken has its due time pushed ahead, and a failed one waits: this ends when none is due.
    while (!this.stopping) {
      const batch = await this.claim();
      if (!batch.length) break;
      finished += await this.work(batch);
    }
    return finished;
  }

  private async claim(): Promise<Row[]> {
    const table = tableOf(this.options.orm.em, ERASURE_CLEANUP_TABLE);
    return this.options.orm.em.fork().getConnection().execute<Row[]>(
      `update ${table} set "due_at" = clock_timestamp() + make_interval(secs => ?), "attempts" = "attempts" + 1
        where "id" in (select "id" from ${table} where "due_at" <= clock_timestamp() order by "due_at" limit ? for update skip locked)
        returning ${this.returning()}`,
      [HOLD_MS / 1000, BATCH],
    );
  }

  /** Every column of the step's entity, under its property's name. */
  private returning(): string {
    this.columns ??= this.options.orm
      .getMetadata()
      .get<Row>(this.options.entity.name)
      .props.map((prop) => `"${prop.fieldNames[0]}" as "${prop.name}"`)
      .join(', ');
    return this.columns;
  }

  private async work(batch: Row[]): Promise<number> {
    const outcomes = await Promise.all(batch.map((row) => this.perform(row).then(() => null, (error: unknown) => error)));
    const done = batch.filter((_, i) => outcomes[i] === null);
    const failed = batch.map((row, i) => ({ row, error: outcomes[i] })).filter(({ error }) => error !== null);
    const givenUp = failed.filter(({ row }) => {
      const work = this.providerWorkOf(row);
      return work !== undefined && row.attempts >= work.maxAttempts;
    });
    for (const { row, error } of givenUp) {
      const { level, message } = this.providerWorkOf(row)!.givenUp;
      this.log[level]({ err: error, userId: row.userId, kind: row.kind, provider: row.provider, target: row.target, attempts: row.attempts }, message);
    }
    const em = this.options.orm.em.fork();
    const table = tableOf(em, ERASURE_CLEANUP_TABLE);
    const finished = [...done, ...givenUp.map(({ row }) => row)];
    if (finished.length) await em.getConnection().execute(`delete from ${table} where "id" in (?)`, [finished.map((row) => row.id)]);
    for (const { row, error } of failed.filter((f) => !givenUp.includes(f))) {
      const waitMs = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (row.attempts - 1));
      await em.getConnection().execute(`update ${table} set "due_at" = clock_timestamp() + make_interval(secs => ?), "last_error" = ? where "id" = ?`, [
        waitMs / 1000,
        messageOf(error),
        row.id,
      ]);
      this.log.warn({ err: error, userId: row.userId, kind: row.kind, attempts: row.attempts, retryInMs: waitMs }, 'could not finish erasing a deleted account\'s file or provider data; trying again later');
    }
    if (done.length) this.log.debug({ done: done.length }, 'erased files and provider data of deleted accounts');
    return finished.length;
  }

  /** The step's handler of a provider row; undefined for a blob (and for a kind the step does not know, which fails until it does). */
  private providerWorkOf(row: Row): ProviderCleanup<Row> | undefined {
    if (row.kind === 'BLOB') return undefined;
    return (this.options.providerWork as Partial<Record<string, ProviderCleanup<Row>>>)[row.kind];
  }

  private async perform(row: Row): Promise<void> {
    if (row.kind === 'BLOB') return this.options.storage.delete(row.target);
    const work = this.providerWorkOf(row);
    if (!work) throw new Error(`${this.options.step} has no cleanup for a ${row.kind} row`);
    const call = new AbortController();
    this.calls.add(call);
    try {
      await work.perform(row, { signal: call.signal, log: this.log });
    } finally {
      this.calls.delete(call);
    }
  }
}

function messageOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).slice(0, 1000);
}
