import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DeliveryError, type SendResult, type Sender } from './channel.js';
import { retryAfterMs } from '../../../platform/http/provider-http.js';
import { failureOfStatus, withFallback, withRetries } from './resilience.js';

interface Note {
  to: string;
}

/** A sender that answers from a script, one outcome per call (the last one repeats). */
function scripted(name: string, ...outcomes: (DeliveryError | Error | 'ok')[]) {
  const calls: Note[] = [];
  const sender: Sender<Note> & { calls: Note[] } = {
    name,
    calls,
    async send(message) {
      calls.push(message);
      const outcome = outcomes[Math.min(calls.length, outcomes.length) - 1]!;
      if (outcome === 'ok') return { provider: name, providerMessageId: `${name}-${calls.length}` } satisfies SendResult;
      throw outcome;
    },
  };
  return sender;
}

const transient = () => new DeliveryError('TRANSIENT', 'answered 500');
const note: Note = { to: 'ann@example.org' };
const signal = new AbortController().signal;
const failureOf = (send: Promise<unknown>) => send.then(() => expect.fail('the send should have failed'), (e: unknown) => e as DeliveryError);

describe('withRetries', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  const policy = { maxRetries: 3, baseDelayMs: 100, maxDelayMs: 300, random: () => 0 };

  it('sends again after TRANSIENT, backing off exponentially up to maxDelayMs, and returns the first success', async () => {
    const provider = scripted('p', transient(), transient(), transient(), 'ok');
    const sending = withRetries(provider, policy).send(note, { signal });
    expect(provider.calls).toHaveLength(1);
    // With no jitter drawn, each wait is half its step: 50, 100, then 150 (step capped at 300).
    for (const [wait, callsAfter] of [[50, 2], [100, 3], [150, 4]] as const) {
      await vi.advanceTimersByTimeAsync(wait - 1);
      expect(provider.calls).toHaveLength(callsAfter - 1);
      await vi.advanceTimersByTimeAsync(1);
      expect(provider.calls).toHaveLength(callsAfter);
    }
    await expect(sending).resolves.toEqual({ provider: 'p', providerMessageId: 'p-4' });
  });

  it('draws jitter within the upper half of each step', async () => {
    const provider = scripted('p', transient(), 'ok');
    const sending = withRetries(provider, { ...policy, random: () => 0.999 }).send(note, { signal });
    await vi.advanceTimersByTimeAsync(99);
    expect(provider.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    await expect(sending).resolves.toMatchObject({ provider: 'p' });
  });

  it('gives up after maxRetries with the last error, counting the attempts', async () => {
    const provider = scripted('p', transient());
    const failing = failureOf(withRetries(provider, { ...policy, maxRetries: 2 }).send(note, { signal }));
    await vi.runAllTimersAsync();
    const error = await failing;
    expect(provider.calls).toHaveLength(3);
    expect(error).toBeInstanceOf(DeliveryError);
    expect(error).toMatchObject({ reason: 'TRANSIENT', message: 'answered 500 (3 attempts)' });
  });

  it.each(['REJECTED', 'AUTH', 'TIMEOUT'] as const)('never sends again after %s', async (reason) => {
    const refusal = new DeliveryError(reason, 'no');
    const provider = scripted('p', refusal, 'ok');
    await expect(withRetries(provider, policy).send(note, { signal })).rejects.toBe(refusal);
    expect(provider.calls).toHaveLength(1);
  });

  it('lets errors that are not DeliveryErrors through untouched', async () => {
    const bug = new TypeError('a bug');
    const provider = scripted('p', bug, 'ok');
    await expect(withRetries(provider, policy).send(note, { signal })).rejects.toBe(bug);
    expect(provider.calls).toHaveLength(1);
  });

  it('waits at least what RATE_LIMITED asked', async () => {
    const provider = scripted('p', new DeliveryError('RATE_LIMITED', '429', 250), 'ok');
    const sending = withRetries(provider, policy).send(note, { signal });
    await vi.advanceTimersByTimeAsync(249);
    expect(provider.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    await expect(sending).resolves.toMatchObject({ providerMessageId: 'p-2' });
  });

  it('backs off on RATE_LIMITED without a Retry-After, and does not wait out one beyond maxDelayMs', async () => {
    const unsaid = scripted('p', new DeliveryError('RATE_LIMITED', '429'), 'ok');
    const sending = withRetries(unsaid, policy).send(note, { signal });
    await vi.advanceTimersByTimeAsync(50);
    await expect(sending).resolves.toMatchObject({ providerMessageId: 'p-2' });

    const tooLong = new DeliveryError('RATE_LIMITED', '429', 60_000);
    const patient = scripted('q', tooLong, 'ok');
    await expect(withRetries(patient, policy).send(note, { signal })).rejects.toBe(tooLong);
    expect(patient.calls).toHaveLength(1);
  });

  it('stops waiting as soon as the signal aborts, with its reason', async () => {
    const provider = scripted('p', transient(), 'ok');
    const controller = new AbortController();
    const sending = withRetries(provider, { ...policy, baseDelayMs: 10_000, maxDelayMs: 10_000 }).send(note, { signal: controller.signal });
    await vi.advanceTimersByTimeAsync(10);
    const reason = new Error('shutting down');
    controller.abort(reason);
    await expect(sending).rejects.toBe(reason);
    await vi.runAllTimersAsync();
    expect(provider.calls).toHaveLength(1);
  });

  it('refuses a policy that makes no sense', () => {
    const provider = scripted('p', 'ok');
    expect(() => withRetries(provider, { ...policy, maxRetries: -1 })).toThrow(RangeError);
    expect(() => withRetries(provider, { ...policy, baseDelayMs: 500, maxDelayMs: 100 })).toThrow(RangeError);
  });
});

describe('withFallback', () => {
  it('uses the first provider that sends, and says so', async () => {
    const primary = scripted('primary', 'ok');
    const secondary = scripted('secondary', 'ok');
    const sender = withFallback([primary, secondary]);
    expect(sender.name).toBe('primary|secondary');
    await expect(sender.send(note, { signal })).resolves.toMatchObject({ provider: 'primary' });
    expect(secondary.calls).toHaveLength(0);
  });

  it.each(['TRANSIENT', 'RATE_LIMITED', 'TIMEOUT', 'AUTH'] as const)('moves on after %s', async (reason) => {
    const primary = scripted('primary', new DeliveryError(reason, 'failed'));
    const secondary = scripted('secondary', 'ok');
    const onFallback = vi.fn();
    await expect(withFallback([primary, secondary], { onFallback }).send(note, { signal })).resolves.toMatchObject({ provider: 'secondary' });
    expect(onFallback).toHaveBeenCalledWith({ provider: 'primary', error: expect.objectContaining({ reason }), next: 'secondary' });
  });

  it('stops at REJECTED: another provider would refuse the message too', async () => {
    const refusal = new DeliveryError('REJECTED', 'bad address');
    const secondary = scripted('secondary', 'ok');
    await expect(withFallback([scripted('primary', refusal), secondary]).send(note, { signal })).rejects.toBe(refusal);
    expect(secondary.calls).toHaveLength(0);
  });

  it('when every provider fails, tells each one\'s story under the reason most worth trying later', async () => {
    const all = withFallback([scripted('a', new DeliveryError('AUTH', 'key refused')), scripted('b', new DeliveryError('RATE_LIMITED', 'slow down', 2_000)), scripted('c', new DeliveryError('TIMEOUT', 'no answer'))]);
    const error = await failureOf(all.send(note, { signal }));
    expect(error).toBeInstanceOf(DeliveryError);
    expect(error).toMatchObject({ reason: 'RATE_LIMITED', retryAfterMs: 2_000, message: 'Every provider failed (a: key refused; b: slow down; c: no answer)' });

    const lonely = new DeliveryError('TRANSIENT', 'down');
    await expect(withFallback([scripted('only', lonely)]).send(note, { signal })).rejects.toBe(lonely);
  });

  it('tries nothing more once the signal aborted', async () => {
    const controller = new AbortController();
    const reason = new Error('shutting down');
    const primary: Sender<Note> = {
      name: 'primary',
      async send() {
        controller.abort(reason);
        throw new DeliveryError('TRANSIENT', 'down');
      },
    };
    const secondary = scripted('secondary', 'ok');
    await expect(withFallback([primary, secondary]).send(note, { signal: controller.signal })).rejects.toBe(reason);
    expect(secondary.calls).toHaveLength(0);
  });

  it('needs a provider', () => {
    expect(() => withFallback([])).toThrow(RangeError);
  });
});

describe('failureOfStatus and retryAfterMs', () => {
  it.each([
    [401, 'AUTH'],
    [403, 'AUTH'],
    [404, 'AUTH'],
    [429, 'RATE_LIMITED'],
    [408, 'TRANSIENT'],
    [500, 'TRANSIENT'],
    [503, 'TRANSIENT'],
    [400, 'REJECTED'],
    [413, 'REJECTED'],
    [422, 'REJECTED'],
  ] as const)('%i is %s', (status, reason) => {
    expect(failureOfStatus('Provider', status, 'detail', 1_000)).toMatchObject({ reason, message: expect.stringContaining('detail') });
  });

  it('reads Retry-After in seconds or as a date', () => {
    const now = Date.parse('2026-03-01T10:00:00Z');
    expect(retryAfterMs('7', now)).toBe(7_000);
    expect(retryAfterMs('Sun, 01 Mar 2026 10:00:30 GMT', now)).toBe(30_000);
    expect(retryAfterMs('Sun, 01 Mar 2026 09:00:00 GMT', now)).toBe(0);
    expect(retryAfterMs('soon', now)).toBeUndefined();
    expect(retryAfterMs(null, now)).toBeUndefined();
    expect(retryAfterMs('', now)).toBeUndefined();
  });
});
