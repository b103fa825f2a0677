import type { EventEnvelope, NewEvent } from './envelope.js';

/**
 * The user deletion saga as its steps speak it. Identity keeps the saga: `user.deleted` starts
 * it, and `user.erasure.requested` asks again the steps that have not reported in time. Each
 * subgraph holding the user's data is a step: it erases (or archives) what it holds in its
 * consumer and reports `user.erasure.completed` in the same transaction. Erasing is idempotent,
 * so being asked twice (or late) is harmless.
 */
export const USER_DELETED = 'user.deleted';
export const USER_ERASURE_REQUESTED = 'user.erasure.requested';
export const USER_ERASURE_COMPLETED = 'user.erasure.completed';

/**
 * The steps that have not reported, asked again: one event per saga and attempt (a new id each
 * time, so no inbox takes it for the one before).
 */
export interface UserErasureRequested {
  userId: string;
  services: string[];
  /** How many times these steps have now been asked, user.deleted being the first. */
  attempt: number;
  /** When the account was deleted (ISO-8601): a late erasure has the effect it would have had on time. */
  requestedAt: string;
}

export interface UserErasureCompleted {
  userId: string;
  /** The subgraph that erased (or archived) what it held of the user. */
  service: string;
}

/**
 * Whose data `step` is asked to erase, and as of when (the deletion's time): user.deleted, or a
 * request naming `step`. Null for any other event, and for a request to other steps.
 */
export function erasureAsked(event: EventEnvelope, step: string): { userId: string; at: Date } | null {
  if (event.type === USER_DELETED) return { userId: (event.payload as { userId: string }).userId, at: new Date(event.timestamp) };
  if (event.type !== USER_ERASURE_REQUESTED) return null;
  const { userId, services, requestedAt } = event.payload as UserErasureRequested;
  return services.includes(step) ? { userId, at: new Date(requestedAt) } : null;
}

/** The report the saga waits for from `step`. */
export function erasureCompleted(userId: string, step: string): NewEvent<UserErasureCompleted> {
  return { type: USER_ERASURE_COMPLETED, userId, payload: { userId, service: step } };
}
