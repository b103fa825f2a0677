import { describe, expect, it } from 'vitest';
import { defaultTemplateStore } from './defaults.js';
import { inMemoryTemplateStore } from './memory.store.js';
import { resolveTemplate } from './resolve.js';
import type { TemplateDefinition, TemplateStore } from './template.js';

const KEY = 'collaboration.invitation.sent';
const stored = (locale: string, version: number): TemplateDefinition => ({
  key: KEY,
  channel: 'SMS',
  locale,
  version,
  body: `stored ${locale} v${version}`,
  source: 'INLINE',
});

/** Records what was asked, to show the walk's order. */
function recording(store: TemplateStore, name: string, asked: string[]): TemplateStore {
  return { find: (key, channel, locale) => (asked.push(`${name}:${locale}`), store.find(key, channel, locale)) };
}

describe('resolveTemplate', () => {
  const defaults = defaultTemplateStore();

  it('walks fr-CA -> fr -> en, trying the store then the defaults at each step', async () => {
    const asked: string[] = [];
    const found = await resolveTemplate(recording(inMemoryTemplateStore([]), 'store', asked), recording(defaults, 'defaults', asked), KEY, 'SMS', 'fr-CA');
    expect(asked).toEqual(['store:fr-CA', 'defaults:fr-CA', 'store:fr', 'defaults:fr']); // and no further: en is never asked
    expect(found).toMatchObject({ locale: 'fr', origin: 'default', definition: { locale: 'fr', version: 0 } });
  });

  it('takes the store’s newest version in the most specific locale it has', async () => {
    const store = inMemoryTemplateStore([stored('fr', 1), stored('fr', 3), stored('fr', 2), stored('en', 9)]);
    const found = await resolveTemplate(store, defaults, KEY, 'SMS', 'fr-CA');
    expect(found).toMatchObject({ locale: 'fr', origin: 'store', definition: { body: 'stored fr v3' } });
    expect(await resolveTemplate(store, defaults, KEY, 'SMS', 'fr-CA').then((r) => r?.definition.version)).toBe(3);
  });

  it('prefers a default in the person’s language to a stored text in another', async () => {
    const store = inMemoryTemplateStore([stored('en', 4)]);
    expect(await resolveTemplate(store, defaults, KEY, 'SMS', 'fr')).toMatchObject({ origin: 'default', locale: 'fr' });
    expect(await resolveTemplate(store, defaults, KEY, 'SMS', 'de-DE')).toMatchObject({ origin: 'store', locale: 'en', definition: { version: 4 } });
  });

  it('a stored fr-CA version wins over the fr default', async () => {
    const found = await resolveTemplate(inMemoryTemplateStore([stored('fr-CA', 1)]), defaults, KEY, 'SMS', 'fr-CA');
    expect(found).toMatchObject({ origin: 'store', locale: 'fr-CA' });
  });

  it('falls back to English for an unknown or invalid locale, per channel', async () => {
    expect(await resolveTemplate(inMemoryTemplateStore([]), defaults, KEY, 'EMAIL', 'ja-JP')).toMatchObject({ locale: 'en', definition: { channel: 'EMAIL' } });
    expect(await resolveTemplate(inMemoryTemplateStore([]), defaults, KEY, 'EMAIL', '???')).toMatchObject({ locale: 'en' });
  });

  it('is null when nothing in the chain has the key', async () => {
    expect(await resolveTemplate(inMemoryTemplateStore([]), defaults, 'marketing.spring_sale', 'EMAIL', 'fr')).toBeNull();
  });
});
