import { forbidden, mutationPayload } from '../../platform/errors.js';
import type { PageArgs } from '../../platform/graphql/connection.js';
import { DateTime } from '../../platform/graphql/scalars.js';
import { requireUser, type SubgraphContext } from '../../platform/subgraph/context.js';
import type { Resolvers } from '../../platform/subgraph/server.js';
import { Membership, Plan, Usage, type Invoice } from './billing.entities.js';
import { currentPeriod, type Period, type PlanTier } from './billing.rules.js';
import type { BillingService } from './billing.service.js';

/** The loaders batch per request level: a list of users with their plans costs one query per table. */
const membershipByUser = (ctx: SubgraphContext) =>
  ctx.loader<string, Membership | null>('membershipByUser', async (ids) => {
    const memberships = await ctx.em.find(Membership, { userId: { $in: [...ids] } });
    const byUser = new Map(memberships.map((m) => [m.userId, m]));
    return ids.map((id) => byUser.get(id) ?? null);
  });

const planByTier = (ctx: SubgraphContext) =>
  ctx.loader<PlanTier, Plan>('planByTier', async (tiers) => {
    const plans = await ctx.em.find(Plan, { tier: { $in: [...tiers] } });
    const byTier = new Map(plans.map((p) => [p.tier, p]));
    return tiers.map((tier) => byTier.get(tier) ?? new Error(`No plan ${tier}`));
  });

/** Keyed by user and period start: memberships of one list may be in different periods (a cancelled one stays in its last). */
const usageOf = (ctx: SubgraphContext) =>
  ctx.loader<string, Usage | null>('usageByUserAndPeriod', async (keys) => {
    const wanted = keys.map((key) => key.split('|') as [string, string]);
    const rows = await ctx.em.find(Usage, { $or: wanted.map(([userId, start]) => ({ userId, periodStart: new Date(start) })) });
    const byKey = new Map(rows.map((u) => [usageKey(u.userId, { start: u.periodStart }), u]));
    return keys.map((key) => byKey.get(key) ?? null);
  });

const usageKey = (userId: string, period: Pick<Period, 'start'>) => `${userId}|${period.start.toISOString()}`;

/** One clock reading per request: every field of a membership is about the same month. */
const requestTimes = new WeakMap<SubgraphContext, Date>();
const requestTime = (ctx: SubgraphContext, clock: () => Date) => {
  let at = requestTimes.get(ctx);
  if (!at) requestTimes.set(ctx, (at = clock()));
  return at;
};

/** Plans and invoices are for the user and admins; anyone else (another member, a guest) is refused. */
const canSee = (userId: string, ctx: SubgraphContext) => ctx.caller.userId === userId || ctx.caller.roles.includes('ADMIN');

export function billingResolvers(billing: BillingService): Resolvers {
  return {
    DateTime,
    Query: {
      plans: (_: unknown, __: unknown, ctx: SubgraphContext) => billing.plans(ctx.em),
    },
    Mutation: {
      changePlan: (_: unknown, { tier }: { tier: PlanTier }, ctx: SubgraphContext) => mutationPayload(() => billing.changePlan(ctx, tier)),
    },
    User: {
      // Null rather than an error for others, so a list of users (a story's collaborators) still resolves.
      membership: (user: { id: string }, _: unknown, ctx: SubgraphContext) => (canSee(user.id, ctx) ? membershipByUser(ctx).load(user.id) : null),
      invoices: (user: { id: string }, args: PageArgs, ctx: SubgraphContext) => {
        requireUser(ctx);
        if (!canSee(user.id, ctx)) throw forbidden('Only the user and admins see their invoices');
        return billing.invoices(ctx, user.id, args);
      },
    },
    Membership: {
      currentPeriodStart: (m: Membership, _: unknown, ctx: SubgraphContext) => currentPeriod(m, requestTime(ctx, billing.clock)).start,
      currentPeriodEnd: (m: Membership, _: unknown, ctx: SubgraphContext) => currentPeriod(m, requestTime(ctx, billing.clock)).end,
      plan: (m: Membership, _: unknown, ctx: SubgraphContext) => planByTier(ctx).load(m.tier),
      // A period without a row is one with nothing used yet: that is how usage resets each month.
      usage: async (m: Membership, _: unknown, ctx: SubgraphContext) =>
        (await usageOf(ctx).load(usageKey(m.userId, currentPeriod(m, requestTime(ctx, billing.clock))))) ?? { storiesCreated: 0, voiceClones: 0, collaboratorsInvited: 0, videosGenerated: 0 },
    },
    Invoice: {
      plan: (invoice: Invoice, _: unknown, ctx: SubgraphContext) => planByTier(ctx).load(invoice.tier),
    },
  };
}
