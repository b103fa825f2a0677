import { mutationPayload } from '../../platform/errors.js';
import { DateTime } from '../../platform/graphql/scalars.js';
import type { SubgraphContext } from '../../platform/subgraph/context.js';
import type { Resolvers } from '../../platform/subgraph/server.js';
import { Invitation, Participant, RoleplayCharacter, Submission, type RoleplayTemplate } from './collaboration.entities.js';
import type { InviteInput, InvitationsService } from './invitations.service.js';
import { invitationStatus } from './collaboration.rules.js';
import { standing, templateById, type TemplatesService } from './templates.service.js';

const charactersOf = (ctx: SubgraphContext) =>
  ctx.loader<string, RoleplayCharacter[]>('charactersOfTemplate', async (ids) => {
    const rows = await ctx.em.find(RoleplayCharacter, { templateId: { $in: [...ids] } }, { orderBy: { position: 'asc' } });
    return ids.map((id) => rows.filter((c) => c.templateId === id));
  });

const characterById = (ctx: SubgraphContext) =>
  ctx.loader<string, RoleplayCharacter | null>('characterById', async (ids) => {
    const rows = await ctx.em.find(RoleplayCharacter, { id: { $in: [...ids] } });
    return ids.map((id) => rows.find((c) => c.id === id) ?? null);
  });

const submissionOf = (ctx: SubgraphContext) =>
  ctx.loader<string, Submission | null>('submissionOfParticipant', async (ids) => {
    const rows = await ctx.em.find(Submission, { participantId: { $in: [...ids] } });
    return ids.map((id) => rows.find((s) => s.participantId === id) ?? null);
  });

export function collaborationResolvers(templates: TemplatesService, invitations: InvitationsService): Resolvers {
  return {
    DateTime,
    Query: {
      roleplayTemplate: (_: unknown, { id }: { id: string }, ctx: SubgraphContext) => templates.template(ctx, id),
      invitation: (_: unknown, { token }: { token: string }, ctx: SubgraphContext) => invitations.byToken(ctx, token),
    },
    Mutation: {
      createRoleplayTemplate: (_: unknown, { storyId }: { storyId: string }, ctx: SubgraphContext) => mutationPayload(() => templates.create(ctx, storyId)),
      inviteCollaborator: (_: unknown, { input }: { input: InviteInput }, ctx: SubgraphContext) => mutationPayload(() => invitations.invite(ctx, input)),
      revokeInvitation: (_: unknown, { id }: { id: string }, ctx: SubgraphContext) => mutationPayload(() => invitations.revoke(ctx, id)),
      acceptInvitation: (_: unknown, { token, guestName }: { token: string; guestName?: string | null }, ctx: SubgraphContext) =>
        mutationPayload(() => invitations.accept(ctx, token, guestName)),
      submitContribution: (_: unknown, { input }: { input: { participantId: string; content: string } }, ctx: SubgraphContext) =>
        mutationPayload(() => invitations.submit(ctx, input)),
    },
    RoleplayTemplate: {
      __resolveReference: ({ id }: { id: string }, ctx: SubgraphContext) => templates.template(ctx, id),
      story: (template: RoleplayTemplate) => ({ __typename: 'Story', id: template.storyId }),
      characters: (template: RoleplayTemplate, _: unknown, ctx: SubgraphContext) => charactersOf(ctx).load(template.id),
      invitations: async (template: RoleplayTemplate, _: unknown, ctx: SubgraphContext) =>
        (await standing(ctx, template)).as === 'AUTHOR' ? ctx.em.find(Invitation, { templateId: template.id }, { orderBy: { sentAt: 'desc' } }) : [],
      participants: async (template: RoleplayTemplate, _: unknown, ctx: SubgraphContext) =>
        (await standing(ctx, template)).as === 'NONE' ? [] : ctx.em.find(Participant, { templateId: template.id }, { orderBy: { createdAt: 'asc' } }),
    },
    Invitation: {
      // As it stands now: past its time it is expired, whether or not that was recorded yet.
      status: (invitation: Invitation) => invitationStatus(invitation, new Date()),
      character: (invitation: Invitation, _: unknown, ctx: SubgraphContext) => characterById(ctx).load(invitation.characterId),
      // Whoever holds the token sees what it invites to: the story's title and the character.
      template: (invitation: Invitation, _: unknown, ctx: SubgraphContext) => templateById(ctx).load(invitation.templateId),
      invitedBy: (invitation: Invitation) => ({ __typename: 'User', id: invitation.invitedBy }),
      inviteeName: (invitation: Invitation, _: unknown, ctx: SubgraphContext) => (ctx.caller.userId === invitation.invitedBy ? invitation.inviteeName : null),
      email: (invitation: Invitation, _: unknown, ctx: SubgraphContext) => (ctx.caller.userId === invitation.invitedBy ? invitation.email : null),
      phone: (invitation: Invitation, _: unknown, ctx: SubgraphContext) => (ctx.caller.userId === invitation.invitedBy ? invitation.phone : null),
    },
    Participant: {
      character: (participant: Participant, _: unknown, ctx: SubgraphContext) => characterById(ctx).load(participant.characterId),
      submission: (participant: Participant, _: unknown, ctx: SubgraphContext) => submissionOf(ctx).load(participant.id),
    },
  };
}
