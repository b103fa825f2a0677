import type { UserDeletion, UserDeletionStep } from './identity.entities.js';

/**
 * The rules of the user deletion saga as plain functions (STYLE 2); deletion.service.ts loads,
 * calls them, and persists.
 */
export type DeletionStatus = 'IN_PROGRESS' | 'COMPLETED';
export type StepStatus = 'PENDING' | 'DONE';

/**
 * The subgraphs that hold a user's data, each a step of every deletion: its consumer handles
 * user.deleted (and user.erasure.requested naming it) and reports user.erasure.completed in the
 * transaction of its erasure. The account is gone for good only when all of them reported.
 *
 * - audit: redacts the user's events in the event log (the events stay, as the operators' record,
 *   without their personal data: names, addresses, titles, messages), those about them that
 *   arrive later are stored redacted.
 * - billing: cancels the membership, from the month the account ended (invoices and usage
 *   counts stay: they are billing's records, and hold nothing but the id).
 * - collaboration: revokes the invitations the user sent, gives back the parts they had not
 *   submitted, and removes their name and contacts from participants and invitations.
 * - narration: deletes their voice samples, voice and narrations (open jobs with them: a worker
 *   under way stops at its next write), then, after the commit, the stored audio and the cloned
 *   voice at its provider (erasure_cleanup, swept until done).
 * - notification: erases their addresses, preferences and messages (a nameless tombstone stays:
 *   a late event about them finds the person gone, not unknown).
 * - story: archives their stories (withdrawn from every reader), refuses new ones, and forgets
 *   their cloned voice.
 * - video: deletes their video jobs and attempts (a worker under way stops at its next write),
 *   then, after the commit, the stored videos, and asks the providers to cancel the jobs' tasks
 *   (best effort: a running one stops; Runway and Luma delete a finished one).
 *
 * Narration and video report once the rows are gone and the deletions are recorded: the files
 * and provider calls follow within seconds, retried until done, and do not hold the saga up.
 *
 * Not a step: identity is the saga itself and deletes its row (provider links and refresh tokens
 * with it) when the saga completes.
 *
 * A saga keeps the steps it started with: changing this list applies to deletions that start
 * afterwards.
 */
export const ERASURE_STEPS: readonly string[] = ['audit', 'billing', 'collaboration', 'narration', 'notification', 'story', 'video'];

type StepState = Pick<UserDeletionStep, 'service' | 'status'>;

/** The steps of a new saga: each asked once, by user.deleted, at `now`. */
export function firstSteps(userId: string, now: Date): UserDeletionStep[] {
  return ERASURE_STEPS.map((service) => ({ userId, service, status: 'PENDING', attempts: 1, requestedAt: now, doneAt: null }));
}

export interface ErasureDecision {
  /** The step to mark DONE; null when there is nothing to mark (an unknown saga or service, a step already done). */
  step: string | null;
  /** Whether that makes every step DONE: the account goes for good, and the saga completes. */
  completes: boolean;
}

/**
 * A step reported done. Reports may come twice (a retry answered after the first report) and
 * in any order: only the first of each step counts, and the saga completes with the last step.
 */
export function erasureReported(deletion: Pick<UserDeletion, 'status'> | null, steps: StepState[], service: string): ErasureDecision {
  const step = steps.find((s) => s.service === service);
  if (!deletion || deletion.status !== 'IN_PROGRESS' || !step || step.status === 'DONE') return { step: null, completes: false };
  return { step: service, completes: steps.every((s) => s.service === service || s.status === 'DONE') };
}

export interface ErasureRetry {
  services: string[];
  /** How many times the steps asked will have been asked, with this request. */
  attempt: number;
}

/**
 * What to ask again: the steps still PENDING whose last request is at least `retryMs` old, in
 * one request per saga. Null when none is due.
 */
export function retryOf(steps: Pick<UserDeletionStep, 'service' | 'status' | 'attempts' | 'requestedAt'>[], now: Date, retryMs: number): ErasureRetry | null {
  const due = steps.filter((s) => s.status === 'PENDING' && now.getTime() - s.requestedAt.getTime() >= retryMs);
  if (!due.length) return null;
  return { services: due.map((s) => s.service).sort(), attempt: Math.max(...due.map((s) => s.attempts)) + 1 };
}

export interface DeletionView {
  userId: string;
  status: DeletionStatus;
  requestedAt: Date;
  completedAt: Date | null;
  steps: { service: string; status: StepStatus; attempts: number; requestedAt: Date; at: Date | null }[];
}

/** The saga as admins see it (userDeletion), steps in name order. */
export function deletionView(deletion: UserDeletion, steps: UserDeletionStep[]): DeletionView {
  return {
    userId: deletion.userId,
    status: deletion.status,
    requestedAt: deletion.requestedAt,
    completedAt: deletion.completedAt,
    steps: [...steps]
      .sort((a, b) => a.service.localeCompare(b.service))
      .map((s) => ({ service: s.service, status: s.status, attempts: s.attempts, requestedAt: s.requestedAt, at: s.doneAt })),
  };
}
