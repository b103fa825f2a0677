import type { EventEnvelope, NewEvent } from '../../platform/events/envelope.js';

/**
 * What collaboration publishes (catalog: schema/events/catalog.json). The envelope's userId is
 * the author for what the author does, the participant's user (null for a guest) for what a
 * participant does. No event carries an invitation's token in the clear: notification gets the
 * invite link sealed (platform/sealed.ts), so the stream and the event log cannot open it.
 */
export const INVITATION_SENT = 'collaboration.invitation.sent';
export const INVITATION_ACCEPTED = 'collaboration.invitation.accepted';
export const INVITATION_REVOKED = 'collaboration.invitation.revoked';
export const INVITATION_EXPIRED = 'collaboration.invitation.expired';
export const SUBMISSION_COMPLETED = 'collaboration.submission.completed';
export const COLLABORATION_COMPLETED = 'collaboration.completed';

export interface InvitationSent {
  invitationId: string;
  templateId: string;
  storyId: string;
  storyTitle: string;
  characterName: string;
  inviteeName: string;
  inviteeEmail: string | null;
  inviteePhone: string | null;
  expiresAt: string;
  /** The invite URL, sealed for FOR_NOTIFICATION with the internal secret: only notification opens it. */
  inviteLinkSealed: string;
}

export interface InvitationAccepted {
  invitationId: string;
  templateId: string;
  storyId: string;
  participantId: string;
  isGuest: boolean;
  /** Who invited: the author, to be told. */
  invitedBy: string;
  participantName: string;
  characterName: string;
  storyTitle: string;
}

export interface InvitationEnded {
  invitationId: string;
  templateId: string;
  storyId: string;
  /** revoked: AUTHOR or ACCOUNT_DELETED. */
  reason?: string;
}

export interface SubmissionCompleted {
  submissionId: string;
  templateId: string;
  storyId: string;
  participantId: string;
  authorId: string;
  participantName: string;
  characterName: string;
  storyTitle: string;
}

export interface CollaborationCompleted {
  templateId: string;
  storyId: string;
  authorId: string;
  participants: number;
  storyTitle: string;
}

/** Consumed. */
export const SUBSCRIPTION_EVENTS = 'subscription.*';
export const USER_DELETED = 'user.deleted';

export interface SubscriptionChange {
  userId: string;
  membershipVersion?: number;
  entitlements: { tier: string; collaboratorsPerStory: number | null };
}

export interface UserDeleted {
  userId: string;
}

/**
 * This subgraph is a step of identity's user deletion saga: it reports user.erasure.completed
 * in the transaction that erased the user's data here, and erases again when identity asks
 * (user.erasure.requested naming it) because no report came in time.
 */
export const USER_ERASURE_REQUESTED = 'user.erasure.requested';
export const USER_ERASURE_COMPLETED = 'user.erasure.completed';
const ERASURE_STEP = 'collaboration';

export interface UserErasureRequested {
  userId: string;
  services: string[];
  attempt: number;
  /** When the account was deleted (ISO-8601). */
  requestedAt: string;
}

export interface UserErasureCompleted {
  userId: string;
  service: string;
}

/**
 * Whose data to erase, and as of when (the deletion's time, so a late or repeated erasure has
 * the effect it would have had on time): user.deleted, or a request naming this subgraph.
 * Null for a request to other subgraphs.
 */
export function erasureAsked(event: EventEnvelope): { userId: string; at: Date } | null {
  if (event.type === USER_DELETED) return { userId: (event.payload as UserDeleted).userId, at: new Date(event.timestamp) };
  if (event.type !== USER_ERASURE_REQUESTED) return null;
  const { userId, services, requestedAt } = event.payload as UserErasureRequested;
  return services.includes(ERASURE_STEP) ? { userId, at: new Date(requestedAt) } : null;
}

/** The report the saga waits for. */
export function erasureCompleted(userId: string): NewEvent<UserErasureCompleted> {
  return { type: USER_ERASURE_COMPLETED, userId, payload: { userId, service: ERASURE_STEP } };
}
