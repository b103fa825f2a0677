import { describe, expect, it } from 'vitest';
import { createLogger } from '../platform/log.js';
import { CircuitBreaker, type CircuitState, type Permit } from './circuit-breaker.js';

const logger = createLogger('silent');

/** A breaker on a clock the test moves by hand, recording every state change it reports. */
function breaker(options: { failureThreshold?: number; resetMs?: number } = {}) {
  const clock = { now: 1_000 };
  const changes: CircuitState[] = [];
  const subject = new CircuitBreaker({
    name: 'story',
    failureThreshold: options.failureThreshold ?? 3,
    resetMs: options.resetMs ?? 5_000,
    logger,
    now: () => clock.now,
    onStateChange: (name, state) => {
      expect(name).toBe('story');
      changes.push(state);
    },
  });
  const fail = (times = 1) => {
    for (let i = 0; i < times; i++) acquire().failed();
  };
  const acquire = (): Permit => {
    const permit = subject.tryAcquire();
    if (!permit) throw new Error(`no permit while ${subject.state}`);
    return permit;
  };
  return { subject, clock, changes, fail, acquire };
}

describe('CircuitBreaker', () => {
  it('stays CLOSED below the threshold, and a success resets the count of consecutive failures', () => {
    const { subject, fail, acquire, changes } = breaker({ failureThreshold: 3 });
    fail(2);
    acquire().succeeded();
    fail(2);
    expect(subject.state).toBe('CLOSED');
    expect(changes).toEqual([]);
  });

  it('opens after failureThreshold consecutive failures and then fails fast', () => {
    const { subject, fail, changes } = breaker({ failureThreshold: 3 });
    fail(3);
    expect(subject.state).toBe('OPEN');
    expect(changes).toEqual(['OPEN']);
    expect(subject.tryAcquire()).toBeNull();
    expect(subject.tryAcquire()).toBeNull();
  });

  it('half-opens after resetMs and lets exactly one trial through', () => {
    const { subject, clock, fail, changes } = breaker({ failureThreshold: 1, resetMs: 5_000 });
    fail();
    clock.now += 4_999;
    expect(subject.tryAcquire()).toBeNull();
    clock.now += 1;
    expect(subject.state).toBe('HALF_OPEN');
    const trial = subject.tryAcquire();
    expect(trial).not.toBeNull();
    // Concurrent calls while the trial is out fail fast.
    expect(subject.tryAcquire()).toBeNull();
    expect(subject.tryAcquire()).toBeNull();
    expect(changes).toEqual(['OPEN', 'HALF_OPEN']);
  });

  it('closes when the trial succeeds', () => {
    const { subject, clock, fail, acquire, changes } = breaker({ failureThreshold: 2, resetMs: 100 });
    fail(2);
    clock.now += 100;
    acquire().succeeded();
    expect(subject.state).toBe('CLOSED');
    expect(changes).toEqual(['OPEN', 'HALF_OPEN', 'CLOSED']);
    // The count starts afresh: one failure does not reopen a circuit whose threshold is two.
    fail();
    expect(subject.state).toBe('CLOSED');
  });

  it('reopens for another resetMs when the trial fails', () => {
    const { subject, clock, fail, acquire, changes } = breaker({ failureThreshold: 2, resetMs: 100 });
    fail(2);
    clock.now += 150;
    acquire().failed();
    expect(subject.state).toBe('OPEN');
    clock.now += 99;
    expect(subject.tryAcquire()).toBeNull();
    clock.now += 1;
    expect(subject.state).toBe('HALF_OPEN');
    expect(changes).toEqual(['OPEN', 'HALF_OPEN', 'OPEN', 'HALF_OPEN']);
  });

  it('counts an outcome only in the state that admitted the call', () => {
    const { subject, clock, fail, acquire } = breaker({ failureThreshold: 2, resetMs: 100 });
    const slow = acquire();
    const slowSuccess = acquire();
    fail(2);
    // A call let in before the circuit opened cannot close it, nor keep it open longer.
    slowSuccess.succeeded();
    expect(subject.state).toBe('OPEN');
    clock.now += 100;
    acquire().succeeded();
    expect(subject.state).toBe('CLOSED');
    // ...nor count against the service once it has recovered.
    slow.failed();
    fail();
    expect(subject.state).toBe('CLOSED');
  });

  it('ignores a permit reported twice', () => {
    const { subject, acquire } = breaker({ failureThreshold: 2 });
    const permit = acquire();
    permit.failed();
    permit.failed();
    expect(subject.state).toBe('CLOSED');
  });

  it('keeps working when onStateChange throws', () => {
    const subject = new CircuitBreaker({
      name: 'story',
      failureThreshold: 1,
      resetMs: 10,
      logger,
      onStateChange: () => {
        throw new Error('metrics are down');
      },
    });
    subject.tryAcquire()!.failed();
    expect(subject.state).toBe('OPEN');
  });

  it('refuses settings that would never open or never retry', () => {
    expect(() => new CircuitBreaker({ name: 's', failureThreshold: 0, resetMs: 1, logger })).toThrow(/failureThreshold/);
    expect(() => new CircuitBreaker({ name: 's', failureThreshold: 1, resetMs: Number.NaN, logger })).toThrow(/resetMs/);
  });
});
