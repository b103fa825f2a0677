import { randomUUID } from 'node:crypto';
import { LockMode, type EntityManager } from '@mikro-orm/postgresql';
import { badInput, userError } from '../../platform/errors.js';
import type { NewEvent } from '../../platform/events/envelope.js';
import { isUuid } from '../../platform/formats.js';
import { requireUser, type SubgraphContext } from '../../platform/subgraph/context.js';
import { CollaborationEntitlement, Invitation, Participant, RoleplayCharacter, RoleplayTemplate, Submission } from './collaboration.entities.js';
import * as events from './collaboration.events.js';
import * as rules from './collaboration.rules.js';
import { looksLikeToken, matches, newInvitationToken, hashOf } from './invitation-token.js';
import type { Peers } from './peers.js';
import type { TemplatesService } from './templates.service.js';

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
      templates: TemplatesService;
      clock: () => Date;
      /** Where an invitee opens an invitation: the token is appended. */
      inviteUrl: (token: string) => string;
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
      // The template row is the lock: invitations to it are counted and made one at a time.
      const template = await em.findOne(RoleplayTemplate, { id: input.templateId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
      if (!template || template.authorId !== userId) throw userError('TEMPLATE_NOT_FOUND', 'There is no such roleplay of yours', 'templateId');
      if (template.status !== 'OPEN') throw userError('TEMPLATE_COMPLETED', 'This roleplay is completed', 'templateId');
      const character = await em.findOne(RoleplayCharacter, { id: input.characterId, templateId: template.id });
      if (!character) throw userError('CHARACTER_NOT_FOUND', 'The roleplay has no such character', 'characterId');
      await this.expireDue(em, emit, { templateId: template.id });
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
      };
      emit({ type: events.INVITATION_SENT, payload });
      return created;
    });
    return { invitation, inviteUrl: this.deps.inviteUrl(token) };
  }

  async revoke(ctx: SubgraphContext, id: string): Promise<{ invitation: Invitation }> {
    const userId = requireUser(ctx);
    if (!isUuid(id)) throw badInput('id is not an invitation id', 'id');
    const invitation = await ctx.transaction(async ({ em, emit }) => {
      const found = await em.findOne(Invitation, { id }, { lockMode: LockMode.PESSIMISTIC_WRITE });
      if (!found || found.invitedBy !== userId) throw userError('INVITATION_NOT_FOUND', 'There is no such invitation of yours', 'id');
      const template = await em.findOneOrFail(RoleplayTemplate, { id: found.templateId });
      if (await this.expireIfDue(em, emit, found, template)) throw userError('INVITATION_NOT_PENDING', 'The invitation has expired', 'id');
      if (found.status !== 'PENDING') throw userError('INVITATION_NOT_PENDING', `The invitation is ${found.status.toLowerCase()}`, 'id');
      found.status = 'REVOKED';
      found.endedAt = this.deps.clock();
      emit({ type: events.INVITATION_REVOKED, payload: { invitationId: found.id, templateId: template.id, storyId: template.storyId, reason: 'AUTHOR' } satisfies events.InvitationEnded });
      // Revoking the last open invitation may leave everyone else done.
      await this.deps.templates.completeIfDone(em, await em.findOneOrFail(RoleplayTemplate, { id: template.id }, { lockMode: LockMode.PESSIMISTIC_WRITE }), emit);
      return found;
    });
    return { invitation };
  }

  /**
   * The invitation a token opens, for anyone holding it; null for a token that is unknown,
   * guessed or altered (indistinguishable). An expired one is marked so when first seen.
   */
  async byToken(ctx: SubgraphContext, token: string): Promise<Invitation | null> {
    if (!looksLikeToken(token)) return null;
    return ctx.transaction(async ({ em, emit }) => {
      const found = await em.findOne(Invitation, { tokenHash: hashOf(token) }, { lockMode: LockMode.PESSIMISTIC_WRITE });
      if (!found || !matches(token, found.tokenHash)) return null;
      await this.expireIfDue(em, emit, found, await em.findOneOrFail(RoleplayTemplate, { id: found.templateId }));
      return found;
    });
  }

  async accept(ctx: SubgraphContext, token: string, guestName: string | null | undefined): Promise<{ participant: Participant; guestSession: { accessToken: string; accessTokenExpiresAt: string } | null }> {
    const notFound = () => userError('INVITATION_NOT_FOUND', 'This invitation link is not valid', 'token');
    if (!looksLikeToken(token)) throw notFound();
    // A guest of another collaboration accepts as nobody in particular: a new guest.
    const userId = ctx.caller.userId;
    const displayName = userId ? await this.deps.peers.displayName(userId, ctx.correlationId) : null;
    const now = this.deps.clock();
    let expired = false;
    const result = await ctx.transaction(async ({ em, emit }) => {
      const invitation = await em.findOne(Invitation, { tokenHash: hashOf(token) }, { lockMode: LockMode.PESSIMISTIC_WRITE });
      if (!invitation || !matches(token, invitation.tokenHash)) throw notFound();
      const template = await em.findOneOrFail(RoleplayTemplate, { id: invitation.templateId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
      if (await this.expireIfDue(em, emit, invitation, template)) {
        expired = true;
        return null;
      }
      if (invitation.status !== 'PENDING') throw userError('INVITATION_NOT_PENDING', `The invitation is ${invitation.status.toLowerCase()}`, 'token');
      if (userId && (await em.count(Participant, { templateId: template.id, userId }))) {
        throw userError('ALREADY_PARTICIPANT', 'You already play a character of this roleplay', 'token');
      }
      const participant = em.create(Participant, {
        id: randomUUID(),
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
      const payload: events.InvitationAccepted = { invitationId: invitation.id, templateId: template.id, storyId: template.storyId, participantId: participant.id, isGuest: !userId, invitedBy: invitation.invitedBy };
      emit({ type: events.INVITATION_ACCEPTED, userId, payload });
      // Issued before the commit: a guest who got no session must not be left a participant
      // nobody can act as. (A session for a participant whose commit then failed opens nothing.)
      const guestSession = userId ? null : await this.deps.peers.guestSession(participant.id, template.id, ctx.correlationId);
      return { participant, guestSession };
    });
    // The expiry is recorded (and its event sent) even though the acceptance is refused.
    if (expired || !result) throw userError('INVITATION_EXPIRED', 'The invitation has expired; ask for a new one', 'token');
    return result;
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
      const payload: events.SubmissionCompleted = { submissionId: submission.id, templateId: template.id, storyId: template.storyId, participantId: participant.id, authorId: template.authorId };
      emit({ type: events.SUBMISSION_COMPLETED, userId: participant.userId, payload });
      await this.deps.templates.completeIfDone(em, template, emit);
      return { submission, template };
    });
  }

  /** Marks every pending invitation past its time expired (of one template, or all), each with its event. */
  async expireDue(em: EntityManager, emit: (event: NewEvent) => void, where: { templateId?: string } = {}): Promise<number> {
    const due = await em.find(Invitation, { ...where, status: 'PENDING', expiresAt: { $lte: this.deps.clock() } }, { lockMode: LockMode.PESSIMISTIC_WRITE });
    const templates = new Map((await em.find(RoleplayTemplate, { id: { $in: [...new Set(due.map((i) => i.templateId))] } })).map((t) => [t.id, t]));
    for (const invitation of due) await this.expireIfDue(em, emit, invitation, templates.get(invitation.templateId)!);
    return due.length;
  }

  /** The periodic sweep: expired invitations get their event even if nobody opens them again. */
  async sweep(em: EntityManager, emit: (event: NewEvent) => void): Promise<number> {
    return this.expireDue(em, emit);
  }

  /** Marks a pending invitation past its time expired, with its event; whether it was. */
  private async expireIfDue(em: EntityManager, emit: (event: NewEvent) => void, invitation: Invitation, template: RoleplayTemplate): Promise<boolean> {
    const now = this.deps.clock();
    if (rules.invitationStatus(invitation, now) !== 'EXPIRED' || invitation.status !== 'PENDING') return false;
    invitation.status = 'EXPIRED';
    invitation.endedAt = now;
    emit({ type: events.INVITATION_EXPIRED, userId: invitation.invitedBy, payload: { invitationId: invitation.id, templateId: template.id, storyId: template.storyId } satisfies events.InvitationEnded });
    return true;
  }
}
