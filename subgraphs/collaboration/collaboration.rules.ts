import { userError } from '../../platform/errors.js';
import type { Invitation, InvitationStatus } from './collaboration.entities.js';

/**
 * Collaboration's rules as plain functions of input, state and clock (STYLE 2): no I/O.
 */

/** An invitation is open for 120 hours after it is sent. */
export const INVITATION_TTL_MS = 120 * 3600_000;

export const expiresAtFor = (sentAt: Date) => new Date(sentAt.getTime() + INVITATION_TTL_MS);

/** Where an invitation stands at `now`: a pending one past its time is expired, whether or not anyone has noticed yet. */
export function invitationStatus(invitation: Pick<Invitation, 'status' | 'expiresAt'>, now: Date): InvitationStatus {
  return invitation.status === 'PENDING' && invitation.expiresAt.getTime() <= now.getTime() ? 'EXPIRED' : invitation.status;
}

export interface StoryForTemplate {
  status: string;
  characters: { name: string; description: string }[];
}

export function assertTemplateAllowed(story: StoryForTemplate): void {
  if (story.status !== 'PUBLISHED') throw userError('STORY_NOT_PUBLISHED', 'Publish the story first: only published stories become roleplays', 'storyId');
  if (!story.characters.length) throw userError('NO_CHARACTERS', 'The story has no analysed characters yet: analyse it first', 'storyId');
}

export interface Contact {
  name: string;
  email: string | null;
  phone: string | null;
}

const EMAIL = /^[^\s@]{1,64}@[^\s@]+\.[^\s@]{2,}$/;
const PHONE = /^\+[1-9]\d{7,14}$/;

/** Trims and checks who is invited: a name, and an email address or an E.164 phone number (or both). */
export function normalizeContact(input: { name: string; email?: string | null; phone?: string | null }): Contact {
  const name = input.name.replace(/\s+/g, ' ').trim();
  if (!name || name.length > 80) throw userError('INVALID_INPUT', 'A name is 1 to 80 characters', 'name');
  const email = input.email?.trim().toLowerCase() || null;
  const phone = input.phone?.replace(/[\s().-]/g, '') || null;
  if (!email && !phone) throw userError('INVALID_CONTACT', 'Give an email address or a phone number', 'email');
  if (email && (email.length > 254 || !EMAIL.test(email))) throw userError('INVALID_CONTACT', 'That is not an email address', 'email');
  if (phone && !PHONE.test(phone)) throw userError('INVALID_CONTACT', 'Give the phone number in international form, e.g. +15551234567', 'phone');
  return { name, email, phone };
}

/** The plan's collaborators per story, against the invitations that hold a character of this template. */
export function assertInviteAllowed(entitlements: { tier: string; collaboratorsPerStory: number | null }, holding: number): void {
  const limit = entitlements.collaboratorsPerStory;
  if (limit === null || holding < limit) return;
  throw userError(
    'PLAN_LIMIT_REACHED',
    limit === 0 ? 'Your plan allows no collaborators' : `Your ${entitlements.tier} plan allows ${limit} ${limit === 1 ? 'collaborator' : 'collaborators'} per story; upgrade to invite more`,
  );
}

/** Before billing's first event about a user arrives, they are on FREE like every new account. */
export const STARTING_ENTITLEMENTS = { tier: 'FREE', collaboratorsPerStory: 1 };

export function normalizeGuestName(name: string | null | undefined, fallback: string): string {
  const given = name?.replace(/\s+/g, ' ').trim();
  if (given === undefined || given === '') return fallback;
  if (given.length > 80) throw userError('INVALID_INPUT', 'A name is at most 80 characters', 'guestName');
  return given;
}

export const CONTENT_MAX_CHARS = 20_000;

export function normalizeContent(content: string): string {
  const trimmed = content.trim();
  if (!trimmed || trimmed.length > CONTENT_MAX_CHARS) throw userError('INVALID_INPUT', `A contribution is 1 to ${CONTENT_MAX_CHARS} characters`, 'content');
  return trimmed;
}

/**
 * A template completes when it has participants, every one has submitted, and no invitation
 * is still waiting for an answer (an expired or revoked one waits for nothing).
 */
export function isComplete(participants: number, submitted: number, pendingInvitations: number): boolean {
  return participants > 0 && submitted === participants && pendingInvitations === 0;
}
