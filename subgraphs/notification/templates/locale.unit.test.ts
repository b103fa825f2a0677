import { describe, expect, it } from 'vitest';
import { canonicalLocale, fallbackChain } from './locale.js';

describe('fallbackChain', () => {
  it.each([
    ['fr-CA', ['fr-CA', 'fr', 'en']],
    ['fr', ['fr', 'en']],
    ['en', ['en']],
    ['en-GB', ['en-GB', 'en']],
    ['zh-Hant-TW', ['zh-Hant-TW', 'zh-Hant', 'zh', 'en']],
    // canonicalized: case, POSIX underscore, extensions dropped
    ['FR-ca', ['fr-CA', 'fr', 'en']],
    ['fr_CA', ['fr-CA', 'fr', 'en']],
    ['de-DE-u-co-phonebk', ['de-DE', 'de', 'en']],
    ['iw', ['he', 'en']],
  ])('%s -> %j', (locale, chain) => {
    expect(fallbackChain(locale)).toEqual(chain);
  });

  it.each(['', '   ', 'not a locale!!', 'en--US', '12'])('an invalid locale %j gives just the default', (locale) => {
    expect(fallbackChain(locale)).toEqual(['en']);
  });

  it('ends in another default, itself truncated, and never repeats a locale', () => {
    expect(fallbackChain('fr-CA', 'fr')).toEqual(['fr-CA', 'fr']);
    expect(fallbackChain('de-AT', 'en-US')).toEqual(['de-AT', 'de', 'en-US', 'en']);
  });

  it('still answers when the default itself is invalid', () => {
    expect(fallbackChain('xx yy', 'also bad')).toEqual(['en']);
  });

  it('canonicalLocale says null for what is not a tag', () => {
    expect(canonicalLocale('pt-br')).toBe('pt-BR');
    expect(canonicalLocale('nope nope')).toBeNull();
    expect(canonicalLocale(undefined as unknown as string)).toBeNull();
  });
});
