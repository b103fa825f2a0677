import { badInput } from '../errors.js';
import { isIsoTime, isUuid } from '../formats.js';

/**
 * Relay connections (clients/README: `edges { cursor node }`, `pageInfo`, `totalCount`, `first`
 * at most 100) with keyset cursors: a cursor holds the sort key of its row, so paging stays
 * correct while rows are added, and a page costs one indexed range scan, not an OFFSET.
 */
export interface PageArgs {
  first?: number | null;
  after?: string | null;
}

export interface Connection<T> {
  totalCount: number;
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
  edges: { cursor: string; node: T }[];
}

const MAX_PAGE_SIZE = 100;
const DEFAULT_PAGE_SIZE = 20;

/** `first` checked against 0..100 (default 20). */
export function pageSize(first: number | null | undefined): number {
  if (first === null || first === undefined) return DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(first) || first < 0 || first > MAX_PAGE_SIZE) {
    throw badInput(`first must be between 0 and ${MAX_PAGE_SIZE}`, 'first');
  }
  return first;
}

/** An opaque cursor for a row's sort key. */
export function encodeCursor(key: readonly (string | number)[]): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

/** The sort key inside `after`, or null without one; a cursor that is not ours is BAD_USER_INPUT. */
function decodeCursor(after: string | null | undefined, arity: number): (string | number)[] | null {
  if (after === null || after === undefined) return null;
  try {
    const key: unknown = JSON.parse(Buffer.from(after, 'base64url').toString('utf8'));
    if (Array.isArray(key) && key.length === arity && key.every((part) => typeof part === 'string' || typeof part === 'number')) {
      return key as (string | number)[];
    }
  } catch {
    // falls through to the error below
  }
  throw badInput('after is not a cursor from this list', 'after');
}

/**
 * The sort key of a cursor over rows ordered by a time and a uuid (the usual keyset: newest
 * first, the id breaking ties), or null without one. Checked strictly, so a well-formed cursor
 * of another list is BAD_USER_INPUT rather than a bad timestamp or uuid reaching SQL.
 */
export function timeIdCursor(after: string | null | undefined): { at: string; id: string } | null {
  const key = decodeCursor(after, 2);
  if (!key) return null;
  const [at, id] = key;
  if (!isIsoTime(at) || !isUuid(id)) throw badInput('after is not a cursor from this list', 'after');
  return { at, id };
}

/**
 * Builds the connection from rows fetched with `limit = first + 1` (the extra row only tells
 * whether there is a next page).
 */
export function toConnection<T>(rows: T[], first: number, totalCount: number, keyOf: (row: T) => readonly (string | number)[]): Connection<T> {
  const page = rows.slice(0, first);
  const edges = page.map((node) => ({ cursor: encodeCursor(keyOf(node)), node }));
  return {
    totalCount,
    pageInfo: { hasNextPage: rows.length > first, endCursor: edges.at(-1)?.cursor ?? null },
    edges,
  };
}
