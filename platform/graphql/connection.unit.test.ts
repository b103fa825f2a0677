import { describe, expect, it } from 'vitest';
import { domainErrorOf } from '../../test/support/domain-error.js';
import { encodeCursor, pageSize, timeIdCursor, toConnection } from './connection.js';

describe('Relay connections', () => {
  it('takes first between 0 and 100, 20 by default', () => {
    expect(pageSize(undefined)).toBe(20);
    expect(pageSize(100)).toBe(100);
    for (const first of [-1, 101, 1.5]) expect(domainErrorOf(() => pageSize(first)), String(first)).toBe('BAD_USER_INPUT:first');
  });

  it('has a next page when the extra row came back, and ends at the last edge', () => {
    const rows = [{ k: 'a' }, { k: 'b' }, { k: 'c' }];
    const page = toConnection(rows, 2, 3, (row) => [row.k]);
    expect(page.edges.map((edge) => edge.node.k)).toEqual(['a', 'b']);
    expect(page.pageInfo).toEqual({ hasNextPage: true, endCursor: encodeCursor(['b']) });
    expect(toConnection(rows.slice(0, 2), 2, 2, (row) => [row.k]).pageInfo.hasNextPage).toBe(false);
  });
});

describe('time-and-id cursors', () => {
  const id = '0b6c7c2e-3f0e-4d7a-9a51-1c2d3e4f5a6b';
  const at = '2026-11-26T20:00:00.123Z';

  it('round-trips the sort key', () => {
    expect(timeIdCursor(encodeCursor([at, id]))).toEqual({ at, id });
    expect(timeIdCursor(null)).toBeNull();
  });

  it('refuses what is not a cursor, or one whose key is not a time and an id', () => {
    const bad = ['not-a-cursor', encodeCursor([at]), ...[[at, 'nope'], ['yesterday', id], ['1', id], [1, id], [at, 7]].map((key) => encodeCursor(key))];
    for (const after of bad) expect(domainErrorOf(() => timeIdCursor(after)), after).toBe('BAD_USER_INPUT:after');
  });
});
