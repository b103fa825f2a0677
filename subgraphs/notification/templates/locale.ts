/**
 * The locales to try for a person's locale, most specific first, ending with the default:
 * fr-CA -> [fr-CA, fr, en]; zh-Hant-TW -> [zh-Hant-TW, zh-Hant, zh, en]. A tag that is not
 * BCP 47 gives just the default, so a bad stored locale still gets a message.
 */
export function fallbackChain(locale: string, defaultLocale = 'en'): string[] {
  const chain: string[] = [];
  for (const tag of [...truncations(locale), ...truncations(defaultLocale)]) {
    if (!chain.includes(tag)) chain.push(tag);
  }
  // A default that is itself invalid must not leave the caller with nothing to try.
  return chain.length > 0 ? chain : ['en'];
}

/** The canonical form of a tag, or null when it is not one. */
export function canonicalLocale(locale: string): string | null {
  if (typeof locale !== 'string' || locale.trim() === '') return null;
  try {
    // POSIX-style locales (fr_CA, from an OS or an old client) are common enough to accept.
    const [canonical] = Intl.getCanonicalLocales(locale.trim().replace(/_/g, '-'));
    // baseName drops extensions (-u-ca-buddhist): templates are never keyed by them.
    return canonical ? new Intl.Locale(canonical).baseName : null;
  } catch {
    return null;
  }
}

/** sr-Latn-RS -> [sr-Latn-RS, sr-Latn, sr]: drop the last subtag until only the language is left. */
function truncations(locale: string): string[] {
  const canonical = canonicalLocale(locale);
  if (!canonical) return [];
  const subtags = canonical.split('-');
  const tags: string[] = [];
  for (let n = subtags.length; n >= 1; n--) tags.push(subtags.slice(0, n).join('-'));
  return tags;
}
