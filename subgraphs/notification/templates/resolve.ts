import type { Channel } from '../preferences.rules.js';
import { fallbackChain } from './locale.js';
import type { TemplateDefinition, TemplateStore } from './template.js';

export interface ResolvedTemplate {
  definition: TemplateDefinition;
  /** The locale of the chain it was found in ("fr" for a person in fr-CA). */
  locale: string;
  /** Whether an admin's stored version or a built-in default answered. */
  origin: 'store' | 'default';
}

/**
 * Finds the template for a person's locale: for each locale of the fallback chain (fr-CA, fr,
 * en), the store's newest version, then the default. A language match outranks a stored
 * customisation: a French speaker gets the French default rather than a stored English text.
 * Null when no locale of the chain has one (a MARKETING key with no template, say).
 */
export async function resolveTemplate(
  store: TemplateStore,
  defaults: TemplateStore,
  key: string,
  channel: Channel,
  locale: string,
): Promise<ResolvedTemplate | null> {
  for (const candidate of fallbackChain(locale)) {
    const stored = await store.find(key, channel, candidate);
    if (stored) return { definition: stored, locale: candidate, origin: 'store' };
    const builtIn = await defaults.find(key, channel, candidate);
    if (builtIn) return { definition: builtIn, locale: candidate, origin: 'default' };
  }
  return null;
}
