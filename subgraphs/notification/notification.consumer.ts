import type { EntityManager } from '@mikro-orm/postgresql';
import { tableOf } from '../../platform/db/tables.js';
import type { EventEnvelope } from '../../platform/events/envelope.js';
import type { ConsumerDefinition } from '../../platform/events/consumer.types.js';
import { NOTIFYING_EVENTS, NotYetKnown, requestsFor, type Links } from './causes.js';
import { queueDeliveries } from './deliveries.js';
import { Delivery, KnownStory, PreferenceRow, Recipient, Suppression } from './notification.entities.js';
import * as events from './notification.events.js';
import { normalizeAddress } from './preferences.rules.js';

const DIRECTORY_EVENTS = [events.USER_REGISTERED, events.USER_UPDATED, events.SUBSCRIPTION_EVENTS, events.STORY_CREATED, events.STORY_UPDATED];
/** user.deleted, or identity asking again: notification's step of the deletion saga. */
const ERASURE_EVENTS = [events.USER_DELETED, events.USER_ERASURE_REQUESTED];

/**
 * One consumer, in stream order: it keeps notification's directory (who is who, with which
 * address, language and plan; which story is whose) and turns each event a person should hear
 * about into deliveries. One consumer rather than two, so a message never waits on a directory
 * that has not caught up: user.registered is in the directory before its welcome is planned.
 */
export function notificationConsumer(links: Links): ConsumerDefinition {
  let deployedAt: Date | null = null;
  return {
    name: 'notification',
    types: [...new Set([...DIRECTORY_EVENTS, ...ERASURE_EVENTS, ...NOTIFYING_EVENTS])],
    async handle(event, ctx) {
      if (ERASURE_EVENTS.includes(event.type)) {
        const erasure = events.erasureAsked(event);
        if (!erasure) return;
        // Idempotent: asked again, it finds nothing left and reports again. Nobody is told.
        await eraseRecipient(ctx.em, erasure.userId, erasure.at);
        ctx.emit(events.erasureCompleted(erasure.userId));
        return;
      }
      deployedAt ??= await deploymentStart(ctx.em);
      // A stream read from its start (notification added to a running platform) fills the
      // directory with the past, and tells nobody about it again.
      const past = new Date(event.timestamp) < deployedAt;
      await updateDirectory(ctx.em, event, past);
      if (past) return;
      const requests = await requestsFor(ctx.em, event, links);
      if (requests.length === 0) return;
      const result = await queueDeliveries(ctx.em, ctx.emit, requests);
      ctx.log.debug({ type: event.type, ...result }, 'deliveries queued');
    },
  };
}

async function deploymentStart(em: EntityManager): Promise<Date> {
  const [row] = await em.getConnection().execute<{ started_at: Date }[]>(`select "started_at" from ${tableOf(em, 'deployment')}`, [], 'all', em.getTransactionContext());
  return row ? new Date(row.started_at) : new Date(0);
}

/**
 * A change to someone the directory has not met yet: for a recent event their registration is
 * on its way (another replica holds it), so the event is retried; from before notification
 * existed, there is nobody to update.
 */
function unknownUser(userId: string, past: boolean): void {
  if (!past) throw new NotYetKnown(`user ${userId}`);
}

/**
 * The person is gone: their addresses, choices and messages with them; the row stays as a
 * tombstone, written even if they were never met (their registration may still be on its way,
 * from a replica or a dead letter replayed): user.registered then finds it and adds nothing, and
 * no directory event brings their name or address back.
 */
async function eraseRecipient(em: EntityManager, userId: string, at: Date): Promise<void> {
  const person = await em.findOne(Recipient, { userId });
  await em.getConnection().execute(
    `insert into ${tableOf(em, 'recipient')} ("user_id", "email", "phone", "display_name", "locale", "registered_at", "deleted_at")
       values (?, null, null, 'Former user', 'en', ?, ?)
     on conflict ("user_id") do update set "email" = null, "phone" = null, "pending_phone" = null, "phone_code_hash" = null,
       "phone_code_expires_at" = null, "display_name" = 'Former user', "deleted_at" = coalesce(${tableOf(em, 'recipient')}."deleted_at", excluded."deleted_at")`,
    [userId, at, at],
    'run',
    em.getTransactionContext(),
  );
  await em.nativeDelete(PreferenceRow, { userId });
  await em.nativeDelete(Delivery, { userId });
  // Messages to their addresses from before they registered, and their bounces, go too; their
  // opt-outs stay (the number or mailbox asked for silence, whoever holds it next).
  const addresses = [person?.email && { channel: 'EMAIL', address: person.email }, person?.phone && { channel: 'SMS', address: person.phone }].filter(Boolean) as { channel: 'EMAIL' | 'SMS'; address: string }[];
  if (addresses.length) {
    await em.nativeDelete(Delivery, { $or: addresses });
    await em.nativeDelete(Suppression, { $or: addresses.map((a) => ({ ...a, kind: 'BOUNCE' })) });
  }
}

async function updateDirectory(em: EntityManager, event: EventEnvelope, past: boolean): Promise<void> {
  const p = event.payload as Record<string, any>;
  const at = new Date(event.timestamp);
  if (event.type === events.USER_REGISTERED) {
    const { userId, email, displayName, locale } = p as events.UserRegistered;
    // Insert-if-absent: a tombstone (the account deleted before this arrived) stays one.
    await em.upsert(Recipient, { userId, email: normalizeAddress('EMAIL', email), phone: null, displayName, locale, tier: 'FREE', membershipVersion: 0, registeredAt: at, deletedAt: null }, { onConflictAction: 'ignore' });
  } else if (event.type === events.USER_UPDATED) {
    const { userId, changes } = p as events.UserUpdated;
    const set: Partial<Recipient> = {};
    if (changes.displayName !== undefined) set.displayName = changes.displayName;
    if (changes.locale !== undefined) set.locale = changes.locale;
    // A deleted person's tombstone is not written to: their name does not come back.
    if (Object.keys(set).length && (await em.nativeUpdate(Recipient, { userId, deletedAt: null }, set)) === 0 && !(await em.count(Recipient, { userId }))) unknownUser(userId, past);
  } else if (event.type.startsWith('subscription.')) {
    const { userId, membershipVersion = 0, entitlements } = p as events.SubscriptionChange;
    // Only a newer membership moves the tier (an older event delivered late changes nothing).
    const updated = await em.getConnection().execute<{ user_id: string }[]>(
      `update ${tableOf(em, 'recipient')} set "tier" = case when "membership_version" <= ? then ? else "tier" end,
         "membership_version" = greatest("membership_version", ?) where "user_id" = ? returning "user_id"`,
      [membershipVersion, entitlements.tier, membershipVersion, userId],
      'all',
      em.getTransactionContext(),
    );
    if (updated.length === 0) unknownUser(userId, past);
  } else if (event.type === events.STORY_CREATED || event.type === events.STORY_UPDATED) {
    const { storyId, title } = p as events.StoryMetadata;
    if (event.type === events.STORY_CREATED && event.userId) await em.upsert(KnownStory, { storyId, authorId: event.userId, title }, { onConflictAction: 'ignore' });
    else await em.nativeUpdate(KnownStory, { storyId }, { title });
  }
}
