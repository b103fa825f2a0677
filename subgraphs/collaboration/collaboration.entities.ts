import { EntitySchema } from '@mikro-orm/postgresql';

export type TemplateStatus = 'OPEN' | 'COMPLETED';
export type InvitationStatus = 'PENDING' | 'ACCEPTED' | 'EXPIRED' | 'REVOKED';

/** A published story made into a roleplay; its characters are copied from the story's analysis when it is made. */
export interface RoleplayTemplate {
  id: string;
  storyId: string;
  authorId: string;
  storyTitle: string;
  status: TemplateStatus;
  createdAt: Date;
  completedAt: Date | null;
}

export const RoleplayTemplate = new EntitySchema<RoleplayTemplate>({
  name: 'RoleplayTemplate',
  tableName: 'roleplay_template',
  properties: {
    id: { type: 'uuid', primary: true },
    storyId: { type: 'uuid', fieldName: 'story_id' },
    authorId: { type: 'uuid', fieldName: 'author_id' },
    storyTitle: { type: 'text', fieldName: 'story_title' },
    status: { type: 'string' },
    createdAt: { type: 'Date', fieldName: 'created_at' },
    completedAt: { type: 'Date', nullable: true, fieldName: 'completed_at' },
  },
});

export interface RoleplayCharacter {
  id: string;
  templateId: string;
  name: string;
  description: string;
  position: number;
}

export const RoleplayCharacter = new EntitySchema<RoleplayCharacter>({
  name: 'RoleplayCharacter',
  tableName: 'roleplay_character',
  properties: {
    id: { type: 'uuid', primary: true },
    templateId: { type: 'uuid', fieldName: 'template_id' },
    name: { type: 'text' },
    description: { type: 'text' },
    position: { type: 'integer' },
  },
});

/** An invitation to play one character. The token is never stored: only its SHA-256. */
export interface Invitation {
  id: string;
  templateId: string;
  characterId: string;
  tokenHash: string;
  inviteeName: string;
  email: string | null;
  phone: string | null;
  status: InvitationStatus;
  invitedBy: string;
  sentAt: Date;
  expiresAt: Date;
  /** When it was accepted, revoked or found expired. */
  endedAt: Date | null;
}

export const Invitation = new EntitySchema<Invitation>({
  name: 'Invitation',
  tableName: 'invitation',
  properties: {
    id: { type: 'uuid', primary: true },
    templateId: { type: 'uuid', fieldName: 'template_id' },
    characterId: { type: 'uuid', fieldName: 'character_id' },
    tokenHash: { type: 'string', fieldName: 'token_hash' },
    inviteeName: { type: 'text', fieldName: 'invitee_name' },
    email: { type: 'text', nullable: true },
    phone: { type: 'text', nullable: true },
    status: { type: 'string' },
    invitedBy: { type: 'uuid', fieldName: 'invited_by' },
    sentAt: { type: 'Date', fieldName: 'sent_at' },
    expiresAt: { type: 'Date', fieldName: 'expires_at' },
    endedAt: { type: 'Date', nullable: true, fieldName: 'ended_at' },
  },
});

/** Someone playing a character: a user (userId), or a guest (userId null, isGuest). */
export interface Participant {
  id: string;
  templateId: string;
  characterId: string;
  invitationId: string;
  userId: string | null;
  isGuest: boolean;
  displayName: string;
  createdAt: Date;
}

export const Participant = new EntitySchema<Participant>({
  name: 'Participant',
  tableName: 'participant',
  properties: {
    id: { type: 'uuid', primary: true },
    templateId: { type: 'uuid', fieldName: 'template_id' },
    characterId: { type: 'uuid', fieldName: 'character_id' },
    invitationId: { type: 'uuid', fieldName: 'invitation_id' },
    userId: { type: 'uuid', nullable: true, fieldName: 'user_id' },
    isGuest: { type: 'boolean', fieldName: 'is_guest' },
    displayName: { type: 'text', fieldName: 'display_name' },
    createdAt: { type: 'Date', fieldName: 'created_at' },
  },
});

export interface Submission {
  id: string;
  templateId: string;
  participantId: string;
  content: string;
  submittedAt: Date;
}

export const Submission = new EntitySchema<Submission>({
  name: 'Submission',
  tableName: 'submission',
  properties: {
    id: { type: 'uuid', primary: true },
    templateId: { type: 'uuid', fieldName: 'template_id' },
    participantId: { type: 'uuid', fieldName: 'participant_id' },
    content: { type: 'text' },
    submittedAt: { type: 'Date', fieldName: 'submitted_at' },
  },
});

/** What each user's plan allows, projected from billing's subscription.* events. */
export interface CollaborationEntitlement {
  userId: string;
  tier: string;
  /** null: unlimited. */
  collaboratorsPerStory: number | null;
  membershipVersion: number;
  asOf: Date;
}

export const CollaborationEntitlement = new EntitySchema<CollaborationEntitlement>({
  name: 'CollaborationEntitlement',
  tableName: 'collaboration_entitlement',
  properties: {
    userId: { type: 'uuid', primary: true, fieldName: 'user_id' },
    tier: { type: 'string' },
    collaboratorsPerStory: { type: 'integer', nullable: true, fieldName: 'collaborators_per_story' },
    membershipVersion: { type: 'integer', fieldName: 'membership_version' },
    asOf: { type: 'Date', fieldName: 'as_of' },
  },
});

export const collaborationEntities = [RoleplayTemplate, RoleplayCharacter, Invitation, Participant, Submission, CollaborationEntitlement];
