import { LockMode } from '@mikro-orm/postgresql';
import { tableOf } from '../../platform/db/tables.js';
import type { ConsumerDefinition } from '../../platform/events/consumer.types.js';
import { CollaborationEntitlement, Invitation, Participant, RoleplayTemplate } from './collaboration.entities.js';
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
    // As the story subgraph's projection: billing's membership version decides which is newer.
    await ctx.em.getConnection().execute(
      `insert into ${tableOf(ctx.em, 'collaboration_entitlement')} as e ("user_id", "tier", "collaborators_per_story", "membership_version", "as_of")
       values (?, ?, ?, ?, ?)
       on conflict ("user_id") do update set
         "tier" = excluded."tier", "collaborators_per_story" = excluded."collaborators_per_story",
         "membership_version" = excluded."membership_version", "as_of" = excluded."as_of"
       where e."membership_version" < excluded."membership_version"
          or (excluded."membership_version" = 0 and e."membership_version" = 0 and e."as_of" <= excluded."as_of")`,
      [userId, entitlements.tier, entitlements.collaboratorsPerStory, membershipVersion ?? 0, new Date(event.timestamp)],
      'run',
      ctx.em.getTransactionContext(),
    );
  },
  async reset(em) {
    await em.nativeDelete(CollaborationEntitlement, {});
  },
};

/**
 * An account is deleted: the invitations it sent and that nobody answered are revoked (their
 * links stop working), and it leaves the roleplays it played in as a nameless participant
 * (the submissions stay, as the story's collaboration does).
 */
export const collaborationConsumer: ConsumerDefinition = {
  name: 'collaboration',
  types: [events.USER_DELETED],
  async handle(event, ctx) {
    const { userId } = event.payload as events.UserDeleted;
    const at = new Date(event.timestamp);
    const pending = await ctx.em.find(Invitation, { invitedBy: userId, status: 'PENDING' }, { lockMode: LockMode.PESSIMISTIC_WRITE });
    const templates = new Map((await ctx.em.find(RoleplayTemplate, { id: { $in: [...new Set(pending.map((i) => i.templateId))] } })).map((t) => [t.id, t]));
    for (const invitation of pending) {
      invitation.status = 'REVOKED';
      invitation.endedAt = at;
      const template = templates.get(invitation.templateId)!;
      ctx.emit({ type: events.INVITATION_REVOKED, userId, payload: { invitationId: invitation.id, templateId: template.id, storyId: template.storyId, reason: 'ACCOUNT_DELETED' } satisfies events.InvitationEnded });
    }
    // The author's address book goes with the account: the invitees' names and contacts.
    await ctx.em.nativeUpdate(Invitation, { invitedBy: userId }, { inviteeName: 'Former invitee', email: null, phone: null });
    await ctx.em.nativeUpdate(Participant, { userId }, { userId: null, displayName: 'Former participant' });
  },
};
