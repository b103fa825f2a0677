import { LockMode } from '@mikro-orm/postgresql';
import { upsertVersioned } from '../../platform/db/versioned-upsert.js';
import type { ConsumerDefinition } from '../../platform/events/consumer.types.js';
import { CollaborationEntitlement, Invitation, Participant, RoleplayTemplate, Submission } from './collaboration.entities.js';
import { markDeletedUser } from './deleted-users.js';
import { completeIfDone } from './templates.service.js';
import * as events from './collaboration.events.js';

/**
 * Collaboration's view of what each user's plan allows (billing's subscription.* events). A
 * read model of the stream: `npm run replay -- collaboration-projections` rebuilds it.
 */
export const projectionsConsumer: ConsumerDefinition = {
  name: 'collaboration-projections',
  types: [events.SUBSCRIPTION_EVENTS],
  async handle(event, ctx) {
    const { userId, membershipVersion, entitlements } = event.payload as events.SubscriptionChange;
    await upsertVersioned(
      ctx.em,
      'collaboration_entitlement',
      { column: 'user_id', value: userId },
      { tier: entitlements.tier, collaborators_per_story: entitlements.collaboratorsPerStory },
      { membershipVersion: membershipVersion ?? 0, asOf: new Date(event.timestamp) },
    );
  },
  async reset(em) {
    await em.nativeDelete(CollaborationEntitlement, {});
  },
};

/**
 * An account is deleted. The invitations it sent that nobody answered are revoked (their links
 * stop working). Where it played without submitting, its part is given back (the invitation
 * revoked, the character free to invite again), so the roleplay is not held open forever;
 * where it submitted, the submission stays with a nameless participant. Names and contacts
 * written about it or by it go. A template that only waited on it completes. This is
 * collaboration's step of the deletion saga: reported in the same transaction, and done again
 * (finding nothing left) when identity asks with user.erasure.requested. The account is recorded
 * as deleted, so its access token, valid for a while yet, adds nothing afterwards.
 */
export const collaborationConsumer: ConsumerDefinition = {
  name: 'collaboration',
  types: [events.USER_DELETED, events.USER_ERASURE_REQUESTED],
  async handle(event, ctx) {
    const erasure = events.erasureAsked(event);
    if (!erasure) return;
    const { userId, at } = erasure;
    // Before anything is read: an accept or invite with a token still valid either committed
    // already (and is found below) or waits for this one and is refused.
    await markDeletedUser(ctx.em, userId, at);
    const played = await ctx.em.find(Participant, { userId });
    const sent = await ctx.em.find(Invitation, { invitedBy: userId, status: 'PENDING' });
    const templateIds = [...new Set([...played.map((p) => p.templateId), ...sent.map((i) => i.templateId)])].sort();
    // Templates first, in id order, as every other path locks them.
    const templates = await ctx.em.find(RoleplayTemplate, { id: { $in: templateIds } }, { lockMode: LockMode.PESSIMISTIC_WRITE, orderBy: { id: 'asc' } });
    const byId = new Map(templates.map((t) => [t.id, t]));
    const revoke = (invitation: Invitation) => {
      const template = byId.get(invitation.templateId)!;
      invitation.status = 'REVOKED';
      invitation.endedAt = at;
      ctx.emit({ type: events.INVITATION_REVOKED, userId, payload: { invitationId: invitation.id, templateId: template.id, storyId: template.storyId, reason: 'ACCOUNT_DELETED' } satisfies events.InvitationEnded });
    };
    for (const invitation of await ctx.em.find(Invitation, { id: { $in: sent.map((i) => i.id) }, status: 'PENDING' }, { lockMode: LockMode.PESSIMISTIC_WRITE })) revoke(invitation);
    const submitted = new Set((await ctx.em.find(Submission, { participantId: { $in: played.map((p) => p.id) } })).map((s) => s.participantId));
    const unsubmitted = played.filter((p) => !submitted.has(p.id));
    // Their invitations after the templates, in id order, in one query.
    const acceptedIds = [...new Set(unsubmitted.map((p) => p.invitationId))];
    const acceptedById = new Map(
      (acceptedIds.length ? await ctx.em.find(Invitation, { id: { $in: acceptedIds } }, { lockMode: LockMode.PESSIMISTIC_WRITE, orderBy: { id: 'asc' } }) : []).map((i) => [i.id, i]),
    );
    for (const participant of unsubmitted) {
      const accepted = acceptedById.get(participant.invitationId);
      ctx.em.remove(participant);
      if (accepted && byId.get(participant.templateId)?.status === 'OPEN') revoke(accepted);
    }
    await ctx.em.flush();
    await ctx.em.nativeUpdate(Participant, { userId }, { userId: null, displayName: 'Former participant' });
    await ctx.em.nativeUpdate(Invitation, { $or: [{ invitedBy: userId }, { id: { $in: played.map((p) => p.invitationId) } }] }, { inviteeName: 'Former invitee', email: null, phone: null });
    for (const template of templates) await completeIfDone(ctx.em, template, (e) => ctx.emit(e), at);
    ctx.emit(events.erasureCompleted(userId));
  },
};
