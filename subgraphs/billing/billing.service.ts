import { randomUUID } from 'node:crypto';
import { LockMode, type EntityManager } from '@mikro-orm/postgresql';
import { badInput } from '../../platform/errors.js';
import type { NewEvent } from '../../platform/events/envelope.js';
import { pageSize, timeIdCursor, toConnection, type Connection, type PageArgs } from '../../platform/graphql/connection.js';
import { requireUser, type SubgraphContext } from '../../platform/subgraph/context.js';
import { Invoice, Membership, Plan } from './billing.entities.js';
import * as events from './billing.events.js';
import * as rules from './billing.rules.js';

export interface PlanChangeResult {
  membership: Membership;
  /** null on a downgrade. */
  invoice: Invoice | null;
}

/**
 * Gives `userId` the FREE plan unless they have a membership already, and announces it
 * (subscription.created). Both user.registered and a first changePlan may get here at the same
 * time: `on conflict do nothing` lets exactly one of them create it. Returns whether it did.
 */
export async function ensureMembership(em: EntityManager, emit: (event: NewEvent) => void, userId: string, at: Date): Promise<boolean> {
  const period = rules.billingPeriod(at);
  const inserted = await em
    .createQueryBuilder(Membership)
    .insert({
      userId,
      tier: rules.FREE_TIER,
      status: 'ACTIVE',
      currentPeriodStart: period.start,
      currentPeriodEnd: period.end,
      createdAt: at,
      updatedAt: at,
      cancelledAt: null,
      version: 1,
    })
    .onConflict('userId')
    .ignore()
    .execute('run');
  if (!inserted.affectedRows) return false;
  const plan = await em.findOneOrFail(Plan, { tier: rules.FREE_TIER });
  const payload: events.SubscriptionCreated = {
    userId,
    membershipVersion: 1,
    tier: plan.tier,
    status: 'ACTIVE',
    currentPeriodEnd: period.end.toISOString(),
    entitlements: rules.entitlements(plan),
  };
  emit({ type: events.SUBSCRIPTION_CREATED, userId, payload });
  return true;
}

/** Plans, plan changes and invoices, as the signed-in user asks for them. */
export class BillingService {
  constructor(readonly clock: () => Date = () => new Date()) {}

  plans(em: EntityManager): Promise<Plan[]> {
    return em.find(Plan, {}, { orderBy: { rank: 'asc' } });
  }

  /** Moves the caller to `tier` at once: an upgrade is invoiced, a downgrade is not. */
  async changePlan(ctx: SubgraphContext, tier: rules.PlanTier): Promise<PlanChangeResult> {
    const userId = requireUser(ctx);
    const now = this.clock();
    return ctx.transaction(async ({ em, emit }) => {
      // A caller whose user.registered billing has not handled yet still has a membership to change.
      await ensureMembership(em, emit, userId, now);
      // Locked: two changes of one user (or one and a cancellation) apply one after the other.
      const membership = await em.findOneOrFail(Membership, { userId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
      const plans = await em.find(Plan, { tier: { $in: [membership.tier, tier] } });
      const from = plans.find((p) => p.tier === membership.tier)!;
      const to = plans.find((p) => p.tier === tier)!;
      const change = rules.decidePlanChange(membership, from, to, now);
      Object.assign(membership, { tier: to.tier, currentPeriodStart: change.period.start, currentPeriodEnd: change.period.end, updatedAt: now, version: membership.version + 1 });
      if (change.kind === 'downgrade') {
        const payload: events.SubscriptionDowngraded = { userId, membershipVersion: membership.version, fromTier: from.tier, toTier: to.tier, entitlements: rules.entitlements(to) };
        emit({ type: events.SUBSCRIPTION_DOWNGRADED, payload });
        return { membership, invoice: null };
      }
      const invoice = em.create(Invoice, {
        id: randomUUID(),
        userId,
        tier: to.tier,
        ...change.invoice,
        status: 'OPEN',
        issuedAt: now,
        periodStart: change.period.start,
        periodEnd: change.period.end,
      });
      em.persist(invoice);
      const payload: events.SubscriptionUpgraded = {
        userId,
        membershipVersion: membership.version,
        fromTier: from.tier,
        toTier: to.tier,
        invoiceId: invoice.id,
        ...change.invoice,
        entitlements: rules.entitlements(to),
      };
      emit({ type: events.SUBSCRIPTION_UPGRADED, payload });
      return { membership, invoice };
    });
  }

  /** A user's invoices, newest first; the caller has been checked to be allowed to see them. */
  async invoices(ctx: SubgraphContext, userId: string, args: PageArgs): Promise<Connection<Invoice>> {
    const first = pageSize(args.first);
    const after = timeIdCursor(args.after);
    const page = ctx.em
      .createQueryBuilder(Invoice)
      .where({ userId })
      .orderBy({ issuedAt: 'desc', id: 'desc' })
      .limit(first + 1);
    // A row comparison, so the page is one range scan of invoice_user_issued_idx.
    if (after) page.andWhere('(issued_at, id) < (?::timestamptz, ?::uuid)', [after.at, after.id]);
    const [rows, totalCount] = await Promise.all([page.getResultList(), ctx.em.count(Invoice, { userId })]);
    return toConnection(rows, first, totalCount, (invoice) => [invoice.issuedAt.toISOString(), invoice.id]);
  }
}
