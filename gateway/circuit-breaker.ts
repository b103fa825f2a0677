import type { Logger } from '../platform/log.js';

export type CircuitState = 'CLOSED' | 'OPEN' | 'HALF_OPEN';

export interface CircuitBreakerOptions {
  /** What the breaker guards (a subgraph's name): in logs and in `onStateChange`. */
  name: string;
  /** Consecutive failures that open the circuit. */
  failureThreshold: number;
  /** How long the circuit stays open before one trial call may go through. */
  resetMs: number;
  logger: Logger;
  /** Milliseconds since any fixed origin; injected so tests need not wait out `resetMs`. */
  now?: () => number;
  onStateChange?: (name: string, state: CircuitState) => void;
}

/** The right to make one call, and where its outcome is reported (once; later reports are ignored). */
export interface Permit {
  /** The call reached the service and it answered (even with an error of the caller's making). */
  succeeded(): void;
  /** The service failed: unreachable, too slow, or a server error. */
  failed(): void;
}

/**
 * A circuit breaker for one remote service. CLOSED: calls go through and consecutive failures
 * are counted; at `failureThreshold` it OPENs. OPEN: calls fail fast, sparing a service that is
 * down (and callers the wait for it) until `resetMs` has passed. HALF_OPEN: exactly one trial
 * call goes through, concurrent ones still fail fast; its success CLOSEs the circuit, its
 * failure OPENs it for another `resetMs`.
 */
export class CircuitBreaker {
  private current: CircuitState = 'CLOSED';
  private failures = 0;
  private openedAt = 0;
  // Bumped on every state change. A call's outcome counts only in the state that admitted it:
  // a slow call let in while CLOSED that fails after the trial has closed the circuit again
  // says nothing about the service now, and must not count against it.
  private generation = 0;
  private trialInFlight = false;
  private readonly now: () => number;

  constructor(private readonly options: CircuitBreakerOptions) {
    if (!Number.isInteger(options.failureThreshold) || options.failureThreshold < 1) throw new RangeError('failureThreshold must be a positive integer');
    if (!(options.resetMs >= 0)) throw new RangeError('resetMs must be zero or more');
    // Monotonic: a wall clock set back by NTP would keep the circuit open for that much longer.
    this.now = options.now ?? (() => performance.now());
  }

  get state(): CircuitState {
    this.halfOpenWhenDue();
    return this.current;
  }

  /** A permit to call the service, or null: fail fast without calling it. */
  tryAcquire(): Permit | null {
    this.halfOpenWhenDue();
    if (this.current === 'OPEN') return null;
    if (this.current === 'HALF_OPEN') {
      if (this.trialInFlight) return null;
      this.trialInFlight = true;
    }
    return this.permitFor(this.generation);
  }

  private permitFor(generation: number): Permit {
    let settled = false;
    const settle = (outcome: 'success' | 'failure') => {
      if (settled) return;
      settled = true;
      if (generation !== this.generation) return;
      if (outcome === 'success') this.onSuccess();
      else this.onFailure();
    };
    return { succeeded: () => settle('success'), failed: () => settle('failure') };
  }

  private onSuccess(): void {
    if (this.current === 'HALF_OPEN') this.transition('CLOSED');
    else this.failures = 0;
  }

  private onFailure(): void {
    if (this.current === 'HALF_OPEN') {
      this.transition('OPEN');
      return;
    }
    this.failures += 1;
    if (this.failures >= this.options.failureThreshold) this.transition('OPEN');
  }

  private halfOpenWhenDue(): void {
    if (this.current === 'OPEN' && this.now() - this.openedAt >= this.options.resetMs) this.transition('HALF_OPEN');
  }

  private transition(to: CircuitState): void {
    const from = this.current;
    const failures = this.failures;
    this.current = to;
    this.generation += 1;
    this.trialInFlight = false;
    if (to === 'OPEN') this.openedAt = this.now();
    if (to === 'CLOSED') this.failures = 0;
    this.log(from, to, failures);
    try {
      this.options.onStateChange?.(this.options.name, to);
    } catch (error) {
      // A metrics hook that throws must not fail the call that happened to change the state.
      this.options.logger.error({ err: error, subgraph: this.options.name }, 'onStateChange failed');
    }
  }

  private log(from: CircuitState, to: CircuitState, failures: number): void {
    const fields = { subgraph: this.options.name, circuit: { from, to }, consecutiveFailures: failures };
    if (to === 'OPEN') this.options.logger.warn({ ...fields, retryInMs: this.options.resetMs }, 'circuit opened: failing fast');
    else if (to === 'HALF_OPEN') this.options.logger.info(fields, 'circuit half-open: letting one trial call through');
    else this.options.logger.info(fields, 'circuit closed: the service answers again');
  }
}
