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
