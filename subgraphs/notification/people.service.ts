import { createHmac, randomInt, randomUUID, timingSafeEqual } from 'node:crypto';
import { LockMode } from '@mikro-orm/postgresql';
import { forbidden, userError } from '../../platform/errors.js';
import { pageSize, timeIdCursor, toConnection, type Connection, type PageArgs } from '../../platform/graphql/connection.js';
import { requireUser, type SubgraphContext } from '../../platform/subgraph/context.js';
import { PHONE_VERIFICATION } from './causes.js';
import { queueDeliveries } from './deliveries.js';
import { Delivery, PreferenceRow, Recipient, Suppression } from './notification.entities.js';
import * as events from './notification.events.js';
import { checkPreferenceChange, effectivePreferences, normalizeAddress, type Preference } from './preferences.rules.js';

const E164 = /^\+[1-9]\d{6,14}$/;

/** Whether the caller may see this person's notification settings and messages: themselves, or an admin. */
export const canSee = (ctx: SubgraphContext, userId: string) => ctx.caller.userId === userId || ctx.caller.roles.includes('ADMIN');

const HOUR_MS = 3_600_000;
const CODE_TTL_MS = 10 * 60_000;
const CODES_PER_HOUR = 5;
const MAX_CODE_ATTEMPTS = 5;

export interface PhoneState {
  /** The confirmed number SMS go to. */
  phone: string | null;
  /** A number waiting for its code. */
  pendingPhone: string | null;
}

const stateOf = (person: Recipient): PhoneState => ({ phone: person.phone, pendingPhone: person.pendingPhone });

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && timingSafeEqual(x, y);
}

export interface PeopleDeps {
  /** Keys the codes' hashes. */
  secret: string;
  /** Seals a code for the message (only notification's worker opens it). */
  seal(value: string): string;
  now(): Date;
}

/** What a person chooses to hear about, how they are reached, and what they were sent. */
export class PeopleService {
  constructor(private readonly deps: PeopleDeps) {}

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

  /**
   * Asks to receive SMS at a number: a code is sent to it, and the number counts (messages to it
   * are the person's, by their choices) only once confirmed with that code. Null stops SMS.
   */
  async setPhone(ctx: SubgraphContext, phone: string | null | undefined): Promise<PhoneState> {
    const userId = requireUser(ctx);
    const normal = phone ? normalizeAddress('SMS', phone) : null;
    if (normal !== null && !E164.test(normal)) throw userError('INVALID_PHONE', 'A phone number is written in E.164, like +15551234567', 'phone');
    const now = this.deps.now();
    return ctx.transaction(async ({ em, emit }) => {
      const person = await em.findOne(Recipient, { userId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
      if (!person || person.deletedAt) throw userError('ACCOUNT_NOT_READY', 'Your account is not known to notifications yet; try again in a moment', null);
      if (normal === null) {
        Object.assign(person, { phone: null, pendingPhone: null, phoneCodeHash: null, phoneCodeExpiresAt: null, phoneCodeAttempts: 0 });
        return stateOf(person);
      }
      if (normal === person.phone) return stateOf(person);
      // Codes cost money and reach strangers' phones: a few an hour per person.
      const recent = await em.count(Delivery, { userId, templateKey: PHONE_VERIFICATION, createdAt: { $gt: new Date(now.getTime() - HOUR_MS) } });
      if (recent >= CODES_PER_HOUR) throw userError('TOO_MANY_CODES', `At most ${CODES_PER_HOUR} codes an hour; try again later`, 'phone');
      const code = String(randomInt(0, 1_000_000)).padStart(6, '0');
      Object.assign(person, { pendingPhone: normal, phoneCodeHash: this.codeHash(userId, normal, code), phoneCodeExpiresAt: new Date(now.getTime() + CODE_TTL_MS), phoneCodeAttempts: 0 });
      // The person says the number works now: a bounce recorded for it does not hold the code back.
      await em.nativeDelete(Suppression, { channel: 'SMS', address: normal, kind: 'BOUNCE' });
      await em.flush();
      await queueDeliveries(em, emit, [
        {
          dedupeKey: `phone:${userId}:${randomUUID()}`,
          cause: PHONE_VERIFICATION,
          eventId: null,
          campaignId: null,
          userId,
          channel: 'SMS',
          category: 'ACCOUNT',
          templateKey: PHONE_VERIFICATION,
          locale: person.locale,
          address: normal,
          variables: { code: { $sealed: this.deps.seal(code) } },
          correlationId: ctx.correlationId,
        },
      ]);
      return stateOf(person);
    });
  }

  /** Confirms the number with the code sent to it; the number then moves to this person (from anyone who had it). */
  async confirmPhone(ctx: SubgraphContext, code: string): Promise<PhoneState> {
    const userId = requireUser(ctx);
    const now = this.deps.now();
    const outcome = await ctx.transaction(async ({ em }) => {
      const person = await em.findOne(Recipient, { userId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
      if (!person?.pendingPhone || !person.phoneCodeHash || !person.phoneCodeExpiresAt) return { error: userError('NO_PENDING_PHONE', 'Ask for a code with setNotificationPhone first', 'code') };
      if (person.phoneCodeExpiresAt <= now || person.phoneCodeAttempts >= MAX_CODE_ATTEMPTS) {
        Object.assign(person, { pendingPhone: null, phoneCodeHash: null, phoneCodeExpiresAt: null, phoneCodeAttempts: 0 });
        return { error: userError('CODE_EXPIRED', 'The code has expired; ask for a new one', 'code') };
      }
      const given = this.codeHash(userId, person.pendingPhone, String(code).trim());
      if (!safeEqual(given, person.phoneCodeHash)) {
        person.phoneCodeAttempts += 1;
        return { error: userError('WRONG_CODE', 'That is not the code we sent', 'code') };
      }
      const phone = person.pendingPhone;
      // Whoever proved they hold the number last has it.
      await em.nativeUpdate(Recipient, { phone, userId: { $ne: userId } }, { phone: null });
      Object.assign(person, { phone, pendingPhone: null, phoneCodeHash: null, phoneCodeExpiresAt: null, phoneCodeAttempts: 0 });
      return { state: stateOf(person) };
    });
    // A wrong try is counted (committed) before it is refused.
    if ('error' in outcome) throw outcome.error;
    return outcome.state;
  }

  private codeHash(userId: string, phone: string, code: string): string {
    return createHmac('sha256', this.deps.secret).update(`phone-code:${userId}:${phone}:${code}`).digest('hex');
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

