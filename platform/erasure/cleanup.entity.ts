import { EntitySchema, type EntitySchemaMetadata } from '@mikro-orm/postgresql';

/**
 * What an erasure could not do inside its transaction, written in it and done after the commit by
 * the ErasureSweeper (sweeper.ts): a stored file to delete (`BLOB`), or work at a provider that
 * the step names (a cloned voice to delete, a task to cancel). A row goes once done, so a process
 * that dies after the erasure's commit leaves the work to the next sweep, never undone.
 */
export interface ErasureCleanup<Kind extends string = string> {
  id: string;
  userId: string;
  kind: 'BLOB' | Kind;
  /** The blob's key, or what the provider knows the thing by (a voice id, a task id). */
  target: string;
  /** The provider that holds it; null for a blob. */
  provider: string | null;
  /** When it is (next) to be done; pushed ahead while a sweeper holds it, and after a failure. */
  dueAt: Date;
  attempts: number;
  lastError: string | null;
  createdAt: Date;
}

export const ERASURE_CLEANUP_TABLE = 'erasure_cleanup';

type Properties<Row> = NonNullable<EntitySchemaMetadata<Row>['properties']>;

/**
 * A step's erasure_cleanup entity: the columns above, and `columns`, what its provider work
 * carries besides its target and provider (video's task handle), as erasureDdl's `columns` made them.
 */
export function erasureCleanupEntity<Row extends ErasureCleanup>(columns: Omit<Properties<Row>, keyof ErasureCleanup>): EntitySchema<Row> {
  const common: Properties<ErasureCleanup> = {
    id: { type: 'uuid', primary: true },
    userId: { type: 'uuid', fieldName: 'user_id' },
    kind: { type: 'string' },
    target: { type: 'text' },
    provider: { type: 'string', nullable: true },
    dueAt: { type: 'Date', fieldName: 'due_at' },
    attempts: { type: 'integer' },
    lastError: { type: 'text', nullable: true, fieldName: 'last_error' },
    createdAt: { type: 'Date', fieldName: 'created_at' },
  };
  return new EntitySchema<Row>({ name: 'ErasureCleanup', tableName: ERASURE_CLEANUP_TABLE, properties: { ...common, ...columns } as unknown as Properties<Row> });
}

/**
 * The tables of a step of the user deletion saga (unqualified: SchemaMigration sets the search
 * path):
 *
 * - `erased_user`: the accounts erased here. A write that creates data for a user checks it under
 *   the user's lock (store.ts), so an access token still valid after the erasure creates nothing.
 * - `erasure_cleanup`: ErasureCleanup above, with its index for the sweeper's question (what is
 *   due). `kinds` are the step's provider work besides BLOB (the check); `columns`, what that work
 *   carries besides its target and provider, stand after "provider".
 *
 * Committed migrations call this: what it returns for their arguments must never change (a
 * change of these tables is a new migration).
 */
export function erasureDdl(step: { kinds: readonly string[]; columns?: readonly string[] }): string[] {
  for (const kind of step.kinds) if (!/^[A-Z_]+$/.test(kind)) throw new TypeError(`erasureDdl: ${JSON.stringify(kind)} is not a kind`);
  const kinds = ['BLOB', ...step.kinds].map((kind) => `'${kind}'`).join(', ');
  const columns = (step.columns ?? []).map((column) => `\n        ${column},`).join('');
  return [
    `create table "erased_user" (
        "user_id" uuid primary key,
        "erased_at" timestamptz not null
      )`,
    `create table "erasure_cleanup" (
        "id" uuid primary key,
        "user_id" uuid not null,
        "kind" text not null check ("kind" in (${kinds})),
        "target" text not null,
        "provider" text null,${columns}
        "due_at" timestamptz not null,
        "attempts" integer not null default 0,
        "last_error" text null,
        "created_at" timestamptz not null
      )`,
    `create index "erasure_cleanup_due_idx" on "erasure_cleanup" ("due_at")`,
  ];
}
