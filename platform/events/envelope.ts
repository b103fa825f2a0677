import { randomUUID } from 'node:crypto';
import { traceHeaders } from '../telemetry/tracing.js';

/**
 * The envelope every domain event travels in: the seed system's `type/serviceName/timestamp/payload`
 * plus what replay and tracing need (id for de-duplication, version of the payload's shape,
 * correlation and causation ids, the user it concerns).
 */
export interface EventEnvelope<P = unknown> {
  id: string;
  type: string;
  serviceName: string;
  timestamp: string;
  version: number;
  correlationId: string | null;
  causationId: string | null;
  userId: string | null;
  payload: P;
  /**
   * The event's headers: W3C `traceparent`/`tracestate` of the span that caused it, so the
   * consumers' spans join the request's trace. Absent when tracing is off.
   */
  trace?: Record<string, string>;
}

export interface NewEvent<P = unknown> {
  type: string;
  payload: P;
  userId?: string | null;
  version?: number;
}

/** What a service knows about the request or event that causes new events. */
export interface EventOrigin {
  serviceName: string;
  correlationId?: string | null;
  causationId?: string | null;
}

export function createEnvelope<P>(event: NewEvent<P>, origin: EventOrigin, now = new Date()): EventEnvelope<P> {
  const trace = traceHeaders();
  return {
    id: randomUUID(),
    type: event.type,
    serviceName: origin.serviceName,
    timestamp: now.toISOString(),
    version: event.version ?? 1,
    correlationId: origin.correlationId ?? null,
    causationId: origin.causationId ?? null,
    userId: event.userId ?? null,
    payload: event.payload,
    ...(Object.keys(trace).length ? { trace } : {}),
  };
}

/** Durable events live on `events.<type>`; `user.registered` -> `events.user.registered`. */
export const EVENT_SUBJECT_PREFIX = 'events.';

/**
 * NATS subject matching: tokens are separated by dots, `*` matches exactly one token and `>`
 * matches one or more trailing tokens. The in-process transport uses this to behave like NATS.
 */
export function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length) return false;
    if (p[i] !== '*' && p[i] !== s[i]) return false;
  }
  return p.length === s.length;
}
