import type { EventEnvelope } from '../../platform/events/envelope.js';
import { erasureAsked as erasureAskedOf, erasureCompleted as erasureCompletedBy } from '../../platform/events/erasure.js';

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
 * This subgraph is a step of identity's user deletion saga (platform/events/erasure.ts): it
 * reports user.erasure.completed in the transaction that erased the user's data here.
 */
export { USER_ERASURE_COMPLETED, USER_ERASURE_REQUESTED, type UserErasureCompleted, type UserErasureRequested } from '../../platform/events/erasure.js';
const ERASURE_STEP = 'collaboration';
/** Whose data to erase here, and as of when; null when the event asks nothing of this subgraph. */
export const erasureAsked = (event: EventEnvelope) => erasureAskedOf(event, ERASURE_STEP);
export const erasureCompleted = (userId: string) => erasureCompletedBy(userId, ERASURE_STEP);
