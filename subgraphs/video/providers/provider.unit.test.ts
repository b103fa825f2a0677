import { describe, expect, it } from 'vitest';
import { nearestDuration } from './provider.js';

describe('nearestDuration', () => {
  // Lengths a story may ask for, halves and ties included.
  const asked = [0, 1, 2, 4.5, 5, 6, 6.5, 7, 7.4, 7.5, 7.6, 8, 9, 9.5, 10, 12, 20, 60];

  it('rounds to the nearest offered length; a tie goes to the longer one', () => {
    expect(nearestDuration(3, [4, 6, 8])).toBe(4);
    expect(nearestDuration(5, [4, 6, 8])).toBe(6);
    expect(nearestDuration(7, [4, 6, 8])).toBe(8);
    expect(nearestDuration(20, [4, 6, 8])).toBe(8);
    expect(nearestDuration(6.4, [2, 3, 4, 5, 6, 7, 8, 9, 10])).toBe(6);
    expect(nearestDuration(6.5, [2, 3, 4, 5, 6, 7, 8, 9, 10])).toBe(7);
  });

  it('picks what Luma picked before (5 s or 9 s, 7 s going to 9 s)', () => {
    for (const s of asked) expect(nearestDuration(s, [5, 9] as const)).toBe(Math.abs(s - 5) < Math.abs(s - 9) ? 5 : 9);
    expect(nearestDuration(7, [5, 9] as const)).toBe(9);
  });

  it('picks what Pika picked before (5 s below 7.5 s, else 10 s)', () => {
    for (const s of asked) expect(nearestDuration(s, [5, 10] as const)).toBe(s < 7.5 ? 5 : 10);
  });
});
