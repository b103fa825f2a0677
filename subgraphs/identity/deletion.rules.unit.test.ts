import { describe, expect, it } from 'vitest';
import { deletionView, ERASURE_STEPS, erasureReported, firstSteps, retryOf } from './deletion.rules.js';
import type { UserDeletionStep } from './identity.entities.js';

const T0 = new Date('2026-12-01T10:00:00.000Z');
const later = (ms: number) => new Date(T0.getTime() + ms);
const inProgress = { status: 'IN_PROGRESS' as const };

/** The saga's steps, with the named ones DONE. */
const stepsWith = (done: string[] = []): UserDeletionStep[] =>
  firstSteps('u1', T0).map((s) => (done.includes(s.service) ? { ...s, status: 'DONE', doneAt: later(1) } : s));

describe('deletion saga rules', () => {
  it('starts with every subgraph that holds user data, each asked once by user.deleted', () => {
    expect([...ERASURE_STEPS].sort()).toEqual(['audit', 'billing', 'collaboration', 'narration', 'notification', 'story', 'video']);
    expect(firstSteps('u1', T0)).toEqual(
      ERASURE_STEPS.map((service) => ({ userId: 'u1', service, status: 'PENDING', attempts: 1, requestedAt: T0, doneAt: null })),
    );
  });

  it('marks a step done, and completes the saga with the last one, whatever the order', () => {
    expect(erasureReported(inProgress, stepsWith(), 'story')).toEqual({ step: 'story', completes: false });
    expect(erasureReported(inProgress, stepsWith(['story', 'billing']), 'notification')).toEqual({ step: 'notification', completes: false });
    expect(erasureReported(inProgress, stepsWith(['story', 'billing', 'notification', 'narration', 'video', 'audit']), 'collaboration')).toEqual({ step: 'collaboration', completes: true });
    expect(erasureReported(inProgress, stepsWith(['collaboration', 'notification', 'story', 'video', 'narration', 'audit']), 'billing')).toEqual({ step: 'billing', completes: true });
    // Narration and video are steps like the others: the saga waits for them too.
    expect(erasureReported(inProgress, stepsWith(['audit', 'billing', 'collaboration', 'notification', 'story']), 'video')).toEqual({ step: 'video', completes: false });
    expect(erasureReported(inProgress, stepsWith(['audit', 'billing', 'collaboration', 'notification', 'story', 'video']), 'narration')).toEqual({ step: 'narration', completes: true });
  });

  it('takes a second report of a step, a report of an unknown step or saga, and one after completion as nothing to do', () => {
    const nothing = { step: null, completes: false };
    expect(erasureReported(inProgress, stepsWith(['story']), 'story')).toEqual(nothing);
    expect(erasureReported(inProgress, stepsWith(), 'search')).toEqual(nothing);
    expect(erasureReported(null, [], 'story')).toEqual(nothing);
    expect(erasureReported({ status: 'COMPLETED' }, stepsWith([...ERASURE_STEPS]), 'story')).toEqual(nothing);
  });

  it('asks again, in one request, the steps still pending whose last request is at least the interval old', () => {
    const steps = stepsWith(['billing', 'story']);
    expect(retryOf(steps, later(59_999), 60_000)).toBeNull();
    expect(retryOf(steps, later(60_000), 60_000)).toEqual({ services: ['audit', 'collaboration', 'narration', 'notification', 'video'], attempt: 2 });
    // A step asked recently waits; the attempt counts the steps' requests so far.
    const asked = steps.map((s) => ({ ...s, attempts: 3, requestedAt: s.status === 'PENDING' && s.service !== 'collaboration' ? later(50_000) : s.requestedAt }));
    expect(retryOf(asked, later(60_000), 60_000)).toEqual({ services: ['collaboration'], attempt: 4 });
    expect(retryOf(stepsWith([...ERASURE_STEPS]), later(3600_000), 60_000)).toBeNull();
  });

  it('shows the saga with its steps in name order and `at` as when each was done', () => {
    const steps = stepsWith(['story']).reverse();
    const view = deletionView({ userId: 'u1', status: 'IN_PROGRESS', requestedAt: T0, completedAt: null, correlationId: 'c' }, steps);
    expect(view).toEqual({
      userId: 'u1',
      status: 'IN_PROGRESS',
      requestedAt: T0,
      completedAt: null,
      steps: [
        { service: 'audit', status: 'PENDING', attempts: 1, requestedAt: T0, at: null },
        { service: 'billing', status: 'PENDING', attempts: 1, requestedAt: T0, at: null },
        { service: 'collaboration', status: 'PENDING', attempts: 1, requestedAt: T0, at: null },
        { service: 'narration', status: 'PENDING', attempts: 1, requestedAt: T0, at: null },
        { service: 'notification', status: 'PENDING', attempts: 1, requestedAt: T0, at: null },
        { service: 'story', status: 'DONE', attempts: 1, requestedAt: T0, at: later(1) },
        { service: 'video', status: 'PENDING', attempts: 1, requestedAt: T0, at: null },
      ],
    });
  });
});
