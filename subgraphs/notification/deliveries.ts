import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { tableOf } from '../../platform/db/tables.js';
import type { NewEvent } from '../../platform/events/envelope.js';
import { PreferenceRow, Suppression, type DeliveryStatus } from './notification.entities.js';
import * as events from './notification.events.js';
import { allows, normalizeAddress, type Category, type Channel, type Preference } from './preferences.rules.js';

/** One message a cause asks for: to one address over one channel, for a person or a bare address. */
export interface DeliveryRequest {
  dedupeKey: string;
  cause: string;
  eventId: string | null;
  campaignId: string | null;
  /** The person the address belongs to: their preferences decide, and the delivery is theirs. */
  userId: string | null;
  channel: Channel;
  category: Category;
  templateKey: string;
  locale: string;
  address: string;
  variables: Record<string, unknown>;
  correlationId: string | null;
}

export interface QueueResult {
  /** Deliveries made (QUEUED, or SUPPRESSED for an address that bounced). */
  created: number;
  /** Left out by the person's preferences. */
  declined: number;
  /** Made before (the same cause, channel and address). */
  duplicates: number;
}

/** The channel the worker listens on: a commit that queued deliveries wakes it at once. */
export const wakeChannel = (em: Pick<EntityManager, 'config'>) => `notification_${em.config.get('schema')}`.replace(/[^A-Za-z0-9_]/g, '_');

/**
 * Queues deliveries in the caller's transaction: each honours its person's preferences, an
 * address that bounced is recorded SUPPRESSED (never sent), and a request whose dedupe key was
 * used before is a no-op, so an event handled twice, or a campaign batch run again after a crash,
 * sends nothing twice. Each delivery made announces itself with notification.requested.
 */
export async function queueDeliveries(em: EntityManager, emit: (event: NewEvent) => void, requests: readonly DeliveryRequest[], now = new Date()): Promise<QueueResult> {
  const result: QueueResult = { created: 0, declined: 0, duplicates: 0 };
  if (requests.length === 0) return result;
  const userIds = [...new Set(requests.flatMap((r) => (r.userId ? [r.userId] : [])))];
  const stored = userIds.length ? await em.find(PreferenceRow, { userId: { $in: userIds } }) : [];
  const preferencesOf = new Map<string, Preference[]>();
  for (const row of stored) preferencesOf.set(row.userId, [...(preferencesOf.get(row.userId) ?? []), row]);
  const wanted = requests.filter((r) => !r.userId || allows(preferencesOf.get(r.userId) ?? [], r.category, r.channel));
  result.declined = requests.length - wanted.length;
  if (wanted.length === 0) return result;
  const suppressed = new Set(
    (await em.find(Suppression, { $or: wanted.map((r) => ({ channel: r.channel, address: normalizeAddress(r.channel, r.address) })) })).map((s) => `${s.channel}:${s.address}`),
  );
  const rows = wanted.map((r) => {
    const address = normalizeAddress(r.channel, r.address);
    const status: DeliveryStatus = suppressed.has(`${r.channel}:${address}`) ? 'SUPPRESSED' : 'QUEUED';
    return { ...r, id: randomUUID(), address, status };
  });
  const columns = ['id', 'dedupe_key', 'event_id', 'campaign_id', 'user_id', 'channel', 'category', 'template_key', 'locale', 'address', 'variables', 'status', 'error_code', 'error', 'next_attempt_at', 'correlation_id', 'created_at', 'updated_at'];
  const values = rows.flatMap((r) => [
    r.id,
    r.dedupeKey,
    r.eventId,
    r.campaignId,
    r.userId,
    r.channel,
    r.category,
    r.templateKey,
    r.locale,
    r.address,
    JSON.stringify(r.variables),
    r.status,
    r.status === 'SUPPRESSED' ? 'SUPPRESSED' : null,
    r.status === 'SUPPRESSED' ? 'The address bounced before; nothing is sent to it until its owner sets it again' : null,
    now,
    r.correlationId,
    now,
    now,
  ]);
  const placeholders = rows.map(() => `(${columns.map((c) => (c === 'variables' ? '?::jsonb' : '?')).join(', ')})`).join(', ');
  const inserted: { id: string }[] = await em
    .getConnection()
    .execute(
      `insert into ${tableOf(em, 'delivery')} (${columns.map((c) => `"${c}"`).join(', ')}) values ${placeholders} on conflict ("dedupe_key") do nothing returning "id"`,
      values,
      'all',
      em.getTransactionContext(),
    );
  const made = new Set(inserted.map((row) => row.id));
  result.created = made.size;
  result.duplicates = rows.length - made.size;
  for (const r of rows) {
    if (!made.has(r.id)) continue;
    emit({
      type: events.NOTIFICATION_REQUESTED,
      userId: r.userId,
      payload: { deliveryId: r.id, channel: r.channel, category: r.category, template: r.templateKey, cause: r.cause, eventId: r.eventId, campaignId: r.campaignId } satisfies events.NotificationRequested,
    });
  }
  if (rows.some((r) => made.has(r.id) && r.status === 'QUEUED')) {
    await em.getConnection().execute(`select pg_notify(?, '')`, [wakeChannel(em)], 'run', em.getTransactionContext());
  }
  return result;
}
