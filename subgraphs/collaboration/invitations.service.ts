import { randomUUID } from 'node:crypto';
import { LockMode, type EntityManager } from '@mikro-orm/postgresql';
import { badInput, userError } from '../../platform/errors.js';
import type { NewEvent } from '../../platform/events/envelope.js';
import { isUuid } from '../../platform/formats.js';
import { requireUser, type SubgraphContext } from '../../platform/subgraph/context.js';
import { CollaborationEntitlement, Invitation, Participant, RoleplayCharacter, RoleplayTemplate, Submission } from './collaboration.entities.js';
import * as events from './collaboration.events.js';
import * as rules from './collaboration.rules.js';
import { looksLikeToken, newInvitationToken, hashOf } from './invitation-token.js';
import type { Peers } from './peers.js';
import { lockLiveUser } from './deleted-users.js';
import { completeIfDone } from './templates.service.js';

type GuestSession = { accessToken: string; accessTokenExpiresAt: string };

export interface InviteInput {
  templateId: string;
  characterId: string;
  name: string;
  email?: string | null;
  phone?: string | null;
}

/** Invitations, their acceptance (by users and guests) and submissions. */
export class InvitationsService {
  constructor(
    private readonly deps: {
      peers: Peers;
      clock: () => Date;
      /** Where an invitee opens an invitation: the token is appended. */
      inviteUrl: (token: string) => string;
      /** Seals the invite URL for the invitation.sent event (notification opens it). */
      sealLink: (url: string) => string;
    },
  ) {}

  async invite(ctx: SubgraphContext, input: InviteInput): Promise<{ invitation: Invitation; inviteUrl: string }> {
    const userId = requireUser(ctx);
    if (!isUuid(input.templateId)) throw badInput('templateId is not a template id', 'templateId');
    if (!isUuid(input.characterId)) throw badInput('characterId is not a character id', 'characterId');
    const contact = rules.normalizeContact(input);
    const { token, hash } = newInvitationToken();
    const now = this.deps.clock();
    const invitation = await ctx.transaction(async ({ em, emit }) => {
      await lockLiveUser(em, userId);
      // The template row is the lock: invitations to it are counted and made one at a time.
      const template = await em.findOne(RoleplayTemplate, { id: input.templateId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
      if (!template || template.authorId !== userId) throw userError('TEMPLATE_NOT_FOUND', 'There is no such roleplay of yours', 'templateId');
      if (template.status !== 'OPEN') throw userError('TEMPLATE_COMPLETED', 'This roleplay is completed', 'templateId');
      const character = await em.findOne(RoleplayCharacter, { id: input.characterId, templateId: template.id });
      if (!character) throw userError('CHARACTER_NOT_FOUND', 'The roleplay has no such character', 'characterId');
      await this.expireDue(em, emit, template);
      // An expiry may have been all it waited on.
      if (template.status !== 'OPEN') throw userError('TEMPLATE_COMPLETED', 'This roleplay is completed', 'templateId');
      const holding = await em.find(Invitation, { templateId: template.id, status: { $in: ['PENDING', 'ACCEPTED'] } });
      if (holding.some((i) => i.characterId === character.id)) throw userError('CHARACTER_TAKEN', `${character.name} is already invited or played`, 'characterId');
      const entitlements = (await em.findOne(CollaborationEntitlement, { userId })) ?? rules.STARTING_ENTITLEMENTS;
      rules.assertInviteAllowed(entitlements, holding.length);
      const created = em.create(Invitation, {
        id: randomUUID(),
        templateId: template.id,
        characterId: character.id,
        tokenHash: hash,
        inviteeName: contact.name,
        email: contact.email,
        phone: contact.phone,
        status: 'PENDING',
        invitedBy: userId,
        sentAt: now,
        expiresAt: rules.expiresAtFor(now),
        endedAt: null,
      });
      const payload: events.InvitationSent = {
        invitationId: created.id,
        templateId: template.id,
        storyId: template.storyId,
        storyTitle: template.storyTitle,
        characterName: character.name,
        inviteeName: contact.name,
        inviteeEmail: contact.email,
        inviteePhone: contact.phone,
        expiresAt: created.expiresAt.toISOString(),
        inviteLinkSealed: this.deps.sealLink(this.deps.inviteUrl(token)),
      };
      emit({ type: events.INVITATION_SENT, payload });
      return created;
    });
    return { invitation, inviteUrl: this.deps.inviteUrl(token) };
  }

  async revoke(ctx: SubgraphContext, id: string): Promise<{ invitation: Invitation }> {
    const userId = requireUser(ctx);
    if (!isUuid(id)) throw badInput('id is not an invitation id', 'id');
    let expired = false;
    const invitation = await ctx.transaction(async ({ em, emit }) => {
      const seen = await em.findOne(Invitation, { id });
      if (!seen || seen.invitedBy !== userId) throw userError('INVITATION_NOT_FOUND', 'There is no such invitation of yours', 'id');
      const { template, invitation: found } = await this.lockPair(em, seen);
      if (await this.expireIfDue(em, emit, found, template)) {
        expired = true;
        return null;
      }
      if (found.status !== 'PENDING') throw userError('INVITATION_NOT_PENDING', `The invitation is ${found.status.toLowerCase()}`, 'id');
      found.status = 'REVOKED';
      found.endedAt = this.deps.clock();
      emit({ type: events.INVITATION_REVOKED, payload: { invitationId: found.id, templateId: template.id, storyId: template.storyId, reason: 'AUTHOR' } satisfies events.InvitationEnded });
      // Revoking the last open invitation may leave everyone else done.
      await completeIfDone(em, template, emit, this.deps.clock());
      return found;
    });
    // The expiry is kept (and its event sent) though the revocation is refused.
    if (expired || !invitation) throw userError('INVITATION_NOT_PENDING', 'The invitation has expired', 'id');
    return { invitation };
  }

  /**
   * The invitation a token opens, for anyone holding it; null for a token that is unknown,
   * guessed or altered (indistinguishable). An expired one is marked so when first seen.
   */
  async byToken(ctx: SubgraphContext, token: string): Promise<Invitation | null> {
    if (!looksLikeToken(token)) return null;
    const seen = await this.find(ctx.em, token);
    if (!seen) return null;
    if (rules.invitationStatus(seen, this.deps.clock()) !== 'EXPIRED' || seen.status !== 'PENDING') return seen;
    return ctx.transaction(async ({ em, emit }) => {
      const { template, invitation } = await this.lockPair(em, seen);
      await this.expireIfDue(em, emit, invitation, template);
      return invitation;
    });
  }

  async accept(ctx: SubgraphContext, token: string, guestName: string | null | undefined): Promise<{ participant: Participant; guestSession: GuestSession | null }> {
    const notFound = () => userError('INVITATION_NOT_FOUND', 'This invitation link is not valid', 'token');
    if (!looksLikeToken(token)) throw notFound();
    // A user whose access token lapsed must not become a guest by accident: the invitation would be used up.
    if (ctx.caller.authError) requireUser(ctx);
    const userId = ctx.caller.userId;
    const seen = await this.find(ctx.em, token);
    if (!seen) throw notFound();
    const now = this.deps.clock();
    const status = rules.invitationStatus(seen, now);
    if (status === 'ACCEPTED' && !userId) return this.resumeGuest(ctx, seen);
    const participantId = randomUUID();
    // Asked before the transaction (no locks held while identity answers), and only for an
    // invitation that can be accepted; a session for a participant never committed opens nothing.
    // Not PENDING now, it cannot be accepted below (an invitation never returns to PENDING);
    // a name identity does not give falls back to the invitee's name.
    const guestSession = !userId && status === 'PENDING' ? await this.deps.peers.guestSession(participantId, seen.templateId, ctx.correlationId) : null;
    const displayName = userId && status === 'PENDING' ? await this.deps.peers.displayName(userId, ctx.correlationId) : null;
    let expired = false;
    const participant = await ctx.transaction(async ({ em, emit }) => {
      // The user's lock before the template's, as the erasure takes them.
      if (userId) await lockLiveUser(em, userId);
      const { template, invitation } = await this.lockPair(em, seen);
      if (await this.expireIfDue(em, emit, invitation, template)) {
        expired = true;
        return null;
      }
      if (invitation.status === 'EXPIRED') throw userError('INVITATION_EXPIRED', 'The invitation has expired; ask for a new one', 'token');
      if (invitation.status !== 'PENDING') throw userError('INVITATION_NOT_PENDING', `The invitation is ${invitation.status.toLowerCase()}`, 'token');
      if (userId && (await em.count(Participant, { templateId: template.id, userId }))) {
        throw userError('ALREADY_PARTICIPANT', 'You already play a character of this roleplay', 'token');
      }
      const created = em.create(Participant, {
        id: participantId,
        templateId: template.id,
        characterId: invitation.characterId,
        invitationId: invitation.id,
        userId,
        isGuest: !userId,
        displayName: userId ? (displayName ?? invitation.inviteeName) : rules.normalizeGuestName(guestName, invitation.inviteeName),
        createdAt: now,
      });
      invitation.status = 'ACCEPTED';
      invitation.endedAt = now;
      const character = await em.findOneOrFail(RoleplayCharacter, { id: invitation.characterId });
      const payload: events.InvitationAccepted = {
        invitationId: invitation.id,
        templateId: template.id,
        storyId: template.storyId,
        participantId,
        isGuest: !userId,
        invitedBy: invitation.invitedBy,
        participantName: created.displayName,
        characterName: character.name,
        storyTitle: template.storyTitle,
      };
      emit({ type: events.INVITATION_ACCEPTED, userId, payload });
      return created;
    });
    // The expiry is kept (and its event sent) though the acceptance is refused.
    if (expired || !participant) throw userError('INVITATION_EXPIRED', 'The invitation has expired; ask for a new one', 'token');
    if (!userId && !guestSession) throw new Error('a guest participant without a session');
    return { participant, guestSession };
  }

  /**
   * The holder of a guest's link asks again (the answer was lost, the session ran out): a new
   * session for the same participant. The link is what the guest has instead of a password.
   */
  private async resumeGuest(ctx: SubgraphContext, invitation: Invitation): Promise<{ participant: Participant; guestSession: GuestSession }> {
    const participant = await ctx.em.findOne(Participant, { invitationId: invitation.id });
    if (!participant?.isGuest) throw userError('INVITATION_NOT_PENDING', 'The invitation is accepted', 'token');
    return { participant, guestSession: await this.deps.peers.guestSession(participant.id, participant.templateId, ctx.correlationId) };
  }

  /** The invitation a token names, unlocked; null for any token that is not one of ours. */
  private find(em: EntityManager, token: string): Promise<Invitation | null> {
    return em.findOne(Invitation, { tokenHash: hashOf(token) });
  }

  /**
   * Locks an invitation's template, then the invitation, read again: every path locks in this
   * order (template, then its invitations), so none waits on another in a cycle.
   */
  private async lockPair(em: EntityManager, seen: Invitation): Promise<{ template: RoleplayTemplate; invitation: Invitation }> {
    const template = await em.findOneOrFail(RoleplayTemplate, { id: seen.templateId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
    const invitation = await em.findOneOrFail(Invitation, { id: seen.id }, { lockMode: LockMode.PESSIMISTIC_WRITE, refresh: true });
    return { template, invitation };
  }

  async submit(ctx: SubgraphContext, input: { participantId: string; content: string }): Promise<{ submission: Submission; template: RoleplayTemplate }> {
    if (!isUuid(input.participantId)) throw badInput('participantId is not a participant id', 'participantId');
    if (!ctx.caller.userId && !ctx.caller.guest) requireUser(ctx);
    const content = rules.normalizeContent(input.content);
    const now = this.deps.clock();
    return ctx.transaction(async ({ em, emit }) => {
      const participant = await em.findOne(Participant, { id: input.participantId });
      const mine = participant && (ctx.caller.guest ? ctx.caller.guest.participantId === participant.id : participant.userId === ctx.caller.userId);
      if (!participant || !mine) throw userError('PARTICIPANT_NOT_FOUND', 'You play no such part', 'participantId');
      // The template row serialises the last submissions: it completes once.
      const template = await em.findOneOrFail(RoleplayTemplate, { id: participant.templateId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
      if (template.status !== 'OPEN') throw userError('TEMPLATE_COMPLETED', 'This roleplay is completed', 'participantId');
      if (await em.count(Submission, { participantId: participant.id })) throw userError('ALREADY_SUBMITTED', 'You have submitted your part already', 'participantId');
      const submission = em.create(Submission, { id: randomUUID(), templateId: template.id, participantId: participant.id, content, submittedAt: now });
      await em.flush();
      const character = await em.findOneOrFail(RoleplayCharacter, { id: participant.characterId });
      const payload: events.SubmissionCompleted = {
        submissionId: submission.id,
        templateId: template.id,
        storyId: template.storyId,
        participantId: participant.id,
        authorId: template.authorId,
        participantName: participant.displayName,
        characterName: character.name,
        storyTitle: template.storyTitle,
      };
      emit({ type: events.SUBMISSION_COMPLETED, userId: participant.userId, payload });
      await completeIfDone(em, template, emit, this.deps.clock());
      return { submission, template };
    });
  }

  /**
   * Marks every pending invitation of a template past its time expired, each with its event.
   * The caller holds the template's row lock.
   */
  async expireDue(em: EntityManager, emit: (event: NewEvent) => void, template: RoleplayTemplate): Promise<number> {
    const due = await em.find(Invitation, { templateId: template.id, status: 'PENDING', expiresAt: { $lte: this.deps.clock() } }, { lockMode: LockMode.PESSIMISTIC_WRITE, orderBy: { id: 'asc' } });
    for (const invitation of due) await this.expireIfDue(em, emit, invitation, template);
    return due.length;
  }

  /**
   * The periodic sweep: expired invitations get their event even if nobody opens them again,
   * and a template that only waited on them completes. Templates are taken one at a time,
   * locked first like everywhere else; one locked by a request now is left for the next sweep.
   */
  async sweep(em: EntityManager, emit: (event: NewEvent) => void): Promise<number> {
    const templateIds = (
      await em.find(Invitation, { status: 'PENDING', expiresAt: { $lte: this.deps.clock() } }, { fields: ['templateId'], orderBy: { templateId: 'asc' }, limit: 1000 })
    ).map((i) => i.templateId);
    let expired = 0;
    for (const templateId of new Set(templateIds)) {
      const template = await em.findOne(RoleplayTemplate, { id: templateId }, { lockMode: LockMode.PESSIMISTIC_PARTIAL_WRITE });
      if (!template) continue;
      expired += await this.expireDue(em, emit, template);
    }
    return expired;
  }

  /** Marks a pending invitation past its time expired, with its event; whether it was. */
  private async expireIfDue(em: EntityManager, emit: (event: NewEvent) => void, invitation: Invitation, template: RoleplayTemplate): Promise<boolean> {
    const now = this.deps.clock();
    if (rules.invitationStatus(invitation, now) !== 'EXPIRED' || invitation.status !== 'PENDING') return false;
    invitation.status = 'EXPIRED';
    invitation.endedAt = now;
    emit({ type: events.INVITATION_EXPIRED, userId: invitation.invitedBy, payload: { invitationId: invitation.id, templateId: template.id, storyId: template.storyId } satisfies events.InvitationEnded });
    // Everyone else may have submitted already: this was what the template waited on.
    await em.flush();
    await completeIfDone(em, template, emit, this.deps.clock());
    return true;
  }
}
