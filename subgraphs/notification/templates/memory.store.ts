import type { Channel } from '../preferences.rules.js';
import type { TemplateDefinition, TemplateStore } from './template.js';

/**
 * The TemplateStore port over a fixed list: how the built-in defaults are looked up, and the
 * store tests use. Keeps the newest version of each key, channel and locale, as the port says.
 */
export function inMemoryTemplateStore(definitions: readonly TemplateDefinition[]): TemplateStore {
  const newest = new Map<string, TemplateDefinition>();
  for (const d of definitions) {
    const id = slot(d.key, d.channel, d.locale);
    const known = newest.get(id);
    if (!known || d.version > known.version) newest.set(id, d);
  }
  return {
    find: async (key, channel, locale) => newest.get(slot(key, channel, locale)) ?? null,
  };
}

const slot = (key: string, channel: Channel, locale: string) => `${key}\u0000${channel}\u0000${locale}`;
