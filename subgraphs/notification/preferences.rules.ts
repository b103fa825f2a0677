import { userError } from '../../platform/errors.js';

/**
 * Who hears about what, as plain functions (STYLE 2). A person's choices are stored per
 * category and channel; what they did not choose follows the category's default. Messages the
 * law requires (ACCOUNT, BILLING) cannot be turned off; MARKETING is off until turned on.
 */
export const CATEGORIES = ['COLLABORATION', 'STORY', 'NARRATION', 'VIDEO', 'ACCOUNT', 'BILLING', 'MARKETING'] as const;
export const CHANNELS = ['EMAIL', 'SMS'] as const;

export type Category = (typeof CATEGORIES)[number];
export type Channel = (typeof CHANNELS)[number];

export interface Preference {
  category: Category;
  channel: Channel;
  enabled: boolean;
}

/** Categories a person cannot opt out of: what they must be told about their account and their money. */
export const REQUIRED: ReadonlySet<Category> = new Set(['ACCOUNT', 'BILLING']);

/** Off until the person turns it on. */
const OPT_IN: ReadonlySet<Category> = new Set(['MARKETING']);

const defaultEnabled = (category: Category) => !OPT_IN.has(category);

/** Every category and channel, the stored choice where there is one, else the default. */
export function effectivePreferences(stored: readonly Preference[]): Preference[] {
  return CATEGORIES.flatMap((category) =>
    CHANNELS.map((channel) => {
      if (REQUIRED.has(category)) return { category, channel, enabled: true };
      const choice = stored.find((p) => p.category === category && p.channel === channel);
      return { category, channel, enabled: choice?.enabled ?? defaultEnabled(category) };
    }),
  );
}

/** Whether a message of `category` may go to this person over `channel`. */
export function allows(stored: readonly Preference[], category: Category, channel: Channel): boolean {
  return effectivePreferences(stored).find((p) => p.category === category && p.channel === channel)!.enabled;
}

/** Checks a change a person asks for: a required category cannot be turned off. */
export function checkPreferenceChange(change: Preference): Preference {
  if (!CATEGORIES.includes(change.category)) throw userError('INVALID_INPUT', `Unknown category ${change.category}`, 'category');
  if (!CHANNELS.includes(change.channel)) throw userError('INVALID_INPUT', `Unknown channel ${change.channel}`, 'channel');
  if (REQUIRED.has(change.category) && !change.enabled) {
    throw userError('REQUIRED_CATEGORY', `${change.category} messages are required by law and cannot be turned off`, 'enabled');
  }
  return change;
}

/**
 * One delivery per event, recipient and channel: the key a redelivered or replayed event
 * finds already used. Recipients are normalised, so Ada@Example.com and ada@example.com are one.
 */
export function deliveryKey(eventId: string, channel: Channel, address: string): string {
  return `${eventId}:${channel}:${normalizeAddress(channel, address)}`;
}

export function normalizeAddress(channel: Channel, address: string): string {
  return channel === 'EMAIL' ? address.trim().toLowerCase() : address.replace(/[\s().-]/g, '');
}
