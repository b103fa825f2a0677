import { LockMode, type EntityManager } from '@mikro-orm/postgresql';
import { badInput, forbidden } from '../../platform/errors.js';
import type { EventHandlerContext } from '../../platform/events/consumer.types.js';
import type { EventEnvelope } from '../../platform/events/envelope.js';
import { isUuid } from '../../platform/formats.js';
import { requireUser, type SubgraphContext } from '../../platform/subgraph/context.js';
import { deletionView, erasureReported, firstSteps, type DeletionView } from './deletion.rules.js';
import { User, UserDeletion, UserDeletionStep } from './identity.entities.js';
import * as events from './identity.events.js';

/**
 * The user deletion saga. deleteAccount marks the account and begins the saga in its
 * transaction, with user.deleted; each step's subgraph erases what it holds and reports
 * user.erasure.completed; the last report deletes the row for good (user.deletion.completed).
 * Steps that stay silent are asked again by DeletionRetries.
 */

/** Inside deleteAccount's transaction: the saga, its steps each asked once (by user.deleted). */
export function beginDeletion(em: EntityManager, userId: string, correlationId: string | null, now: Date): void {
  // The steps name their saga by a plain column, not a relation, so the unit of work does not know to
  // insert the saga first; their foreign key is deferred (checked at commit), so the order here does not matter.
  em.persist(em.create(UserDeletion, { userId, status: 'IN_PROGRESS', requestedAt: now, completedAt: null, correlationId }));
  for (const step of firstSteps(userId, now)) em.persist(em.create(UserDeletionStep, step));
}

/**
 * A step reported (identity's consumer of user.erasure.completed). The saga's row is locked
 * first, so two last reports handled at once (replicas) see each other's step, and exactly one
 * of them completes the saga; the retry loop passes over a saga locked here.
 */
export async function recordErasure(ctx: EventHandlerContext, event: EventEnvelope<events.UserErasureCompleted>): Promise<void> {
  const { userId, service } = event.payload;
  const deletion = isUuid(userId) ? await ctx.em.findOne(UserDeletion, { userId }, { lockMode: LockMode.PESSIMISTIC_WRITE }) : null;
  const steps = deletion ? await ctx.em.find(UserDeletionStep, { userId }) : [];
  const decision = erasureReported(deletion, steps, service);
  if (!decision.step) {
    // A second report (a retry answered after the first), or one of no saga (a user.deleted
    // published by hand): nothing left to do.
    ctx.log.debug({ userId, service, status: deletion?.status ?? null }, 'erasure report with nothing to record');
    return;
  }
  const at = new Date(event.timestamp);
  Object.assign(steps.find((s) => s.service === decision.step)!, { status: 'DONE', doneAt: at });
  if (!decision.completes) return;
  // Provider links and refresh tokens go with it (on delete cascade).
  await ctx.em.nativeDelete(User, { id: userId });
  Object.assign(deletion!, { status: 'COMPLETED', completedAt: at });
  const payload: events.UserDeletionCompleted = { userId };
  ctx.emit({ type: events.USER_DELETION_COMPLETED, userId, payload });
  ctx.log.info({ userId, steps: steps.length }, 'account deleted for good: every step erased its data');
}

/** Admins only: the saga of a user, null when they never asked to be deleted (or the id is unknown). */
export async function findDeletion(ctx: SubgraphContext, userId: string): Promise<DeletionView | null> {
  requireUser(ctx);
  if (!ctx.caller.roles.includes('ADMIN')) throw forbidden('Deletions are for admins to follow');
  if (!isUuid(userId)) throw badInput('userId is not a user id', 'userId');
  const deletion = await ctx.em.findOne(UserDeletion, { userId });
  if (!deletion) return null;
  return deletionView(deletion, await ctx.em.find(UserDeletionStep, { userId }));
}
