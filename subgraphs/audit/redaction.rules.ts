/**
 * What the event log keeps of an event about a deleted user (audit's step of the deletion saga):
 * the envelope whole, and of the payload its shape, ids, times, numbers, booleans and enum-like
 * values. Every other string (names, addresses, titles, messages, sealed links) becomes
 * ERASED. Pure, and idempotent: redacting a redacted payload changes nothing.
 */
export const ERASED = '[erased]';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const UUID_ANYWHERE = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/;
/** One word of code: no space, no `@`, short. Free text and addresses never pass. */
const TOKEN = /^[A-Za-z0-9][A-Za-z0-9_.:/+-]{0,63}$/;

/**
 * Keys whose values the catalog (schema/events/catalog.json) gives as enums or codes: their
 * value is kept when it is one token. Keyed rather than guessed from the value, so a name
 * written in capitals ("ADA") is not taken for an enum.
 */
const ENUM_KEYS = new Set([
  'cause', 'category', 'changed', 'channel', 'code', 'contentType', 'currency', 'dominantEmotion', 'fromTier', 'metric',
  'model', 'provider', 'providers', 'reason', 'service', 'services', 'source', 'status', 'template', 'tier', 'toTier', 'type', 'voice',
]);

export const isUuid = (value: string): boolean => UUID.test(value);

/** The payload with its personal strings replaced by ERASED (see above). */
export function redactPayload(payload: unknown): unknown {
  return redact(payload, false);
}

function redact(value: unknown, enumKey: boolean): unknown {
  if (typeof value === 'string') return isUuid(value) || ISO_TIME.test(value) || (enumKey && TOKEN.test(value)) ? value : ERASED;
  // An array takes its key from the object holding it (`services: ['billing']`).
  if (Array.isArray(value)) return value.map((item) => redact(item, enumKey));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, redact(item, ENUM_KEYS.has(key))]));
  }
  return value;
}

/** Every uuid an event names (its user and any in the payload), lower-cased as PostgreSQL prints them. */
export function uuidsIn(userId: string | null, payload: unknown): string[] {
  const found = new Set((JSON.stringify(payload ?? null).match(UUID_ANYWHERE) ?? []).map((id) => id.toLowerCase()));
  if (userId && isUuid(userId)) found.add(userId.toLowerCase());
  return [...found];
}
