import { forbidden, userError } from '../../platform/errors.js';
import { pageSize, timeIdCursor, toConnection, type Connection, type PageArgs } from '../../platform/graphql/connection.js';
import { requireUser, type SubgraphContext } from '../../platform/subgraph/context.js';
import { Delivery, PreferenceRow, Recipient, Suppression } from './notification.entities.js';
import * as events from './notification.events.js';
import { checkPreferenceChange, effectivePreferences, normalizeAddress, type Preference } from './preferences.rules.js';

const E164 = /^\+[1-9]\d{6,14}$/;

/** Whether the caller may see this person's notification settings and messages: themselves, or an admin. */
export const canSee = (ctx: SubgraphContext, userId: string) => ctx.caller.userId === userId || ctx.caller.roles.includes('ADMIN');

/** What a person chooses to hear about, how they are reached, and what they were sent. */
export class PeopleService {
  async preferences(ctx: SubgraphContext, userId: string): Promise<Preference[]> {
    return effectivePreferences(await ctx.em.find(PreferenceRow, { userId }));
  }

  async setPreference(ctx: SubgraphContext, input: Preference): Promise<{ preference: Preference }> {
    const userId = requireUser(ctx);
    const change = checkPreferenceChange(input);
    await ctx.transaction(async ({ em, emit }) => {
      const before = await em.findOne(PreferenceRow, { userId, category: change.category, channel: change.channel });
      await em.upsert(PreferenceRow, { userId, category: change.category, channel: change.channel, enabled: change.enabled, updatedAt: new Date() });
      // Said once per real change: setting what is already set announces nothing.
      const was = before?.enabled ?? effectivePreferences([]).find((p) => p.category === change.category && p.channel === change.channel)!.enabled;
      if (was !== change.enabled) emit({ type: events.PREFERENCE_CHANGED, payload: { ...change } satisfies events.PreferenceChanged });
    });
    return { preference: change };
  }

  async phone(ctx: SubgraphContext, userId: string): Promise<string | null> {
    return (await ctx.em.findOne(Recipient, { userId }))?.phone ?? null;
  }

  /** Sets (or clears) where SMS reach the person. Setting a number again lifts its bounce's suppression: its owner vouches for it. */
  async setPhone(ctx: SubgraphContext, phone: string | null | undefined): Promise<{ phone: string | null }> {
    const userId = requireUser(ctx);
    const normal = phone ? normalizeAddress('SMS', phone) : null;
    if (normal !== null && !E164.test(normal)) throw userError('INVALID_PHONE', 'A phone number is written in E.164, like +15551234567', 'phone');
    await ctx.transaction(async ({ em }) => {
      const person = await em.findOne(Recipient, { userId });
      if (!person || person.deletedAt) throw userError('ACCOUNT_NOT_READY', 'Your account is not known to notifications yet; try again in a moment', null);
      person.phone = normal;
      if (normal) await em.nativeDelete(Suppression, { channel: 'SMS', address: normal });
    });
    return { phone: normal };
  }

  /** The person's deliveries, newest first. */
  async deliveries(ctx: SubgraphContext, userId: string, args: PageArgs): Promise<Connection<Delivery>> {
    requireUser(ctx);
    if (!canSee(ctx, userId)) throw forbidden('Only the user and admins see their messages');
    const first = pageSize(args.first);
    const after = timeIdCursor(args.after);
    const page = ctx.em.createQueryBuilder(Delivery).where({ userId }).orderBy({ createdAt: 'desc', id: 'desc' }).limit(first + 1);
    if (after) page.andWhere('(created_at, id) < (?::timestamptz, ?::uuid)', [after.at, after.id]);
    const rows = await page.getResultList();
    const totalCount = await ctx.em.count(Delivery, { userId });
    return toConnection(rows, first, totalCount, (d) => [d.createdAt.toISOString(), d.id]);
  }
}

