import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { badInput, forbidden, userError } from '../../platform/errors.js';
import type { NewEvent } from '../../platform/events/envelope.js';
import { isUuid } from '../../platform/formats.js';
import type { Caller } from '../../platform/internal-auth.js';
import { requireUser, type SubgraphContext } from '../../platform/subgraph/context.js';
import { Invitation, Participant, RoleplayCharacter, RoleplayTemplate, Submission } from './collaboration.entities.js';
import * as events from './collaboration.events.js';
import * as rules from './collaboration.rules.js';
import { lockLiveUser } from './deleted-users.js';
import type { Peers } from './peers.js';

/** Who the caller is to a template: its author, one of its participants (a user or a guest), or nobody. */
export type Standing = { as: 'AUTHOR' } | { as: 'PARTICIPANT'; participantId: string } | { as: 'NONE' };

/** What a guest's session allows: its own template only. */
export const guestOf = (caller: Caller, templateId: string) => (caller.guest?.templateId === templateId ? caller.guest : null);

export async function standingOf(em: EntityManager, caller: Caller, template: RoleplayTemplate): Promise<Standing> {
  if (caller.userId && caller.userId === template.authorId) return { as: 'AUTHOR' };
  const guest = guestOf(caller, template.id);
  if (guest) {
    const participant = await em.findOne(Participant, { id: guest.participantId, templateId: template.id });
    return participant ? { as: 'PARTICIPANT', participantId: participant.id } : { as: 'NONE' };
  }
  if (caller.userId) {
    const participant = await em.findOne(Participant, { templateId: template.id, userId: caller.userId });
    if (participant) return { as: 'PARTICIPANT', participantId: participant.id };
  }
  return { as: 'NONE' };
}

/** The caller's standing towards a template, once per request and template. */
export const standing = (ctx: SubgraphContext, template: RoleplayTemplate): Promise<Standing> =>
  ctx.loader<RoleplayTemplate, Standing>('standing', (batch) => Promise.all(batch.map((t) => standingOf(ctx.em, ctx.caller, t)))).load(template);

/** Templates: made from published stories, read by their author and participants, completed when everyone has submitted. */
export class TemplatesService {
  constructor(private readonly deps: { peers: Peers; clock: () => Date }) {}

  async create(ctx: SubgraphContext, storyId: string): Promise<{ template: RoleplayTemplate }> {
    const userId = requireUser(ctx);
    if (!isUuid(storyId)) throw badInput('storyId is not a story id', 'storyId');
    const story = await this.deps.peers.story(storyId, ctx.caller, ctx.correlationId);
    if (!story) throw userError('STORY_NOT_FOUND', 'There is no such story', 'storyId');
    if (story.authorId !== userId) throw forbidden('Only its author makes a roleplay of a story');
    rules.assertTemplateAllowed(story);
    const now = this.deps.clock();
    const template = await ctx.transaction(async ({ em }) => {
      // A template made after the erasure would never be closed.
      await lockLiveUser(em, userId);
      const created = em.create(RoleplayTemplate, { id: randomUUID(), storyId, authorId: userId, storyTitle: story.title, status: 'OPEN', createdAt: now, completedAt: null });
      // The entities declare no relations, so the unit of work cannot order the inserts: the template first.
      await em.flush();
      story.characters.forEach((character, position) =>
        em.create(RoleplayCharacter, { id: randomUUID(), templateId: created.id, name: character.name, description: character.description, position }),
      );
      return created;
    });
    return { template };
  }

  /** A template, for its author, its participants and their guests; null if there is none. */
  async template(ctx: SubgraphContext, id: string): Promise<RoleplayTemplate | null> {
    if (!isUuid(id)) throw badInput('id is not a template id', 'id');
    if (!ctx.caller.userId && !ctx.caller.guest) requireUser(ctx);
    // A guest's session reaches its own template only, and says nothing of others, not even whether they exist.
    if (ctx.caller.guest && ctx.caller.guest.templateId !== id) throw forbidden('This session is for another collaboration');
    const template = await templateById(ctx).load(id);
    if (!template) return null;
    if ((await standing(ctx, template)).as === 'NONE') throw forbidden('Only its author and participants see a roleplay');
    return template;
  }
}

/**
 * Completes the template if every participant has submitted and no invitation waits for an
 * answer; called in the transaction of what may have been the last step, with the template
 * row locked, so it completes once.
 */
export async function completeIfDone(em: EntityManager, template: RoleplayTemplate, emit: (event: NewEvent) => void, now: Date): Promise<boolean> {
  if (template.status !== 'OPEN') return false;
  // One after another: they share the transaction's connection.
  const participants = await em.count(Participant, { templateId: template.id });
  const submitted = await em.count(Submission, { templateId: template.id });
  const pending = await em.count(Invitation, { templateId: template.id, status: 'PENDING', expiresAt: { $gt: now } });
  if (!rules.isComplete(participants, submitted, pending)) return false;
  template.status = 'COMPLETED';
  template.completedAt = now;
  const payload: events.CollaborationCompleted = { templateId: template.id, storyId: template.storyId, authorId: template.authorId, participants, storyTitle: template.storyTitle };
  emit({ type: events.COLLABORATION_COMPLETED, userId: template.authorId, payload });
  return true;
}

// Batched: references to many templates in one response cost one query.
export const templateById = (ctx: SubgraphContext) =>
  ctx.loader<string, RoleplayTemplate | null>('templateById', async (ids) => {
    const rows = await ctx.em.find(RoleplayTemplate, { id: { $in: [...ids] } });
    return ids.map((id) => rows.find((row) => row.id === id) ?? null);
  });
