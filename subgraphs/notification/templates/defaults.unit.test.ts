import { describe, expect, it } from 'vitest';
import { CATEGORIES } from '../preferences.rules.js';
import { parseMessage, variableUsages } from './ast.js';
import { DEFAULT_LOCALES, DEFAULT_TEMPLATE_KEYS, defaultTemplates, type TemplateVariable } from './defaults.js';
import { escapeHtml, renderTemplate, validateTemplate, type TemplateVariables } from './render.js';
import type { TemplateDefinition } from './template.js';

const NAME = `Zoë <b>O'Brien</b> & "co"`;
const LINK = 'https://app.storyloom.example/s/42?from=mail&lang=fr';

/** A value for each variable; `choice` picks among a select's values. */
function sample(variables: readonly TemplateVariable[], count: number, choice = 0): TemplateVariables {
  const values: Record<string, string | number> = {};
  for (const v of variables) {
    if (v.values) values[v.name] = v.values[choice % v.values.length]!;
    else if (v.type === 'string') values[v.name] = `${v.name}: ${NAME}`;
    else if (v.type === 'number') values[v.name] = count;
    else if (v.type === 'date') values[v.name] = '2025-03-01T18:30:00Z';
    else values[v.name] = `${LINK}&v=${v.name}`;
  }
  return values;
}

const all = defaultTemplates();
const find = (key: string, channel: 'EMAIL' | 'SMS', locale: string) =>
  all.find((d) => d.key === key && d.channel === channel && d.locale === locale)!;
const namesIn = (d: TemplateDefinition) =>
  new Set((['subject', 'body', 'html'] as const).flatMap((p) => (d[p] ? [...variableUsages(parseMessage(d[p]!, d.locale).ast).keys()] : [])));

describe('DEFAULT_TEMPLATE_KEYS', () => {
  it('lists each key once, in a known category, with every event a person hears about', () => {
    const keys = DEFAULT_TEMPLATE_KEYS.map((k) => k.key);
    expect(new Set(keys).size).toBe(keys.length);
    for (const k of DEFAULT_TEMPLATE_KEYS) expect(CATEGORIES).toContain(k.category);
    expect(keys).toHaveLength(14);
    expect(new Set(DEFAULT_TEMPLATE_KEYS.map((k) => k.category))).toEqual(new Set(['COLLABORATION', 'STORY', 'NARRATION', 'VIDEO', 'ACCOUNT', 'BILLING']));
  });

  it('has an EMAIL (subject, text, HTML) and an SMS in English and French for every key, all valid', () => {
    expect(all).toHaveLength(DEFAULT_TEMPLATE_KEYS.length * DEFAULT_LOCALES.length * 2);
    for (const d of all) {
      expect(validateTemplate(d), `${d.key} ${d.channel} ${d.locale}`).toEqual([]);
      if (d.channel === 'EMAIL') expect([d.subject, d.body, d.html].every((p) => typeof p === 'string' && p.length > 0)).toBe(true);
      expect(d).toMatchObject({ version: 0, source: 'INLINE' });
    }
  });
});

describe.each(DEFAULT_TEMPLATE_KEYS.map((k) => [k.key, k] as const))('default %s', (key, spec) => {
  it('uses only the variables it declares, and its text body uses every one of them', () => {
    const declared = spec.variables.map((v) => v.name).sort();
    for (const locale of DEFAULT_LOCALES) {
      for (const channel of ['EMAIL', 'SMS'] as const) {
        const used = [...namesIn(find(key, channel, locale))];
        expect(declared, `${channel} ${locale} uses ${used.join(', ')}`).toEqual(expect.arrayContaining(used));
      }
      const body = find(key, 'EMAIL', locale);
      expect([...variableUsages(parseMessage(body.body, locale).ast).keys()].sort()).toEqual(declared);
    }
  });

  it.each([0, 1, 7])('renders in both languages with %d as every number, nothing missing, every value escaped in HTML', (count) => {
    const choices = Math.max(1, ...spec.variables.map((v) => ('values' in v ? v.values.length : 1)));
    for (let choice = 0; choice < choices; choice++) {
      const values = sample(spec.variables, count, choice);
      const rendered = DEFAULT_LOCALES.map((locale) => {
        const email = renderTemplate(find(key, 'EMAIL', locale), values, { locale });
        const sms = renderTemplate(find(key, 'SMS', locale), values, { locale });
        expect(email.subject!.length).toBeGreaterThan(0);
        expect(email.text).not.toMatch(/[{}]/);
        expect(email.html).not.toContain('<b>O');
        for (const v of spec.variables) {
          if (v.type === 'string' && !('values' in v)) {
            expect(email.text).toContain(values[v.name]);
            expect(email.html).toContain(escapeHtml(String(values[v.name])));
          }
          if (v.type === 'url') expect(email.html).toContain(`href="${escapeHtml(String(values[v.name]))}"`);
          // A select's codes (storiesCreated, GOLD) are for the template, never for the reader.
          if ('values' in v) for (const code of v.values) expect(`${email.subject} ${email.text} ${sms.text}`).not.toContain(code);
        }
        expect(sms.subject).toBeUndefined();
        expect(sms.html).toBeUndefined();
        return { email, sms };
      });
      const [en, fr] = rendered;
      expect(fr!.email.text).not.toBe(en!.email.text);
      expect(fr!.sms.text).not.toBe(en!.sms.text);
    }
  });
});

describe('defaults, as a person reads them', () => {
  it('an invitation in French: dates, plurals and typography', () => {
    const values = sample(DEFAULT_TEMPLATE_KEYS[0].variables, 1);
    const fr = renderTemplate(find('collaboration.invitation.sent', 'EMAIL', 'fr'), values, { locale: 'fr-CA' });
    expect(fr.text).toContain('L’invitation expire le 1 mars 2025.');
    const en = renderTemplate(find('collaboration.invitation.sent', 'EMAIL', 'en'), values, { locale: 'en' });
    expect(en.text).toContain('The invitation expires on March 1, 2025.');
  });

  it('a usage limit names the metric with its plural in each language', () => {
    const text = (locale: 'en' | 'fr', metric: string, limit: number) =>
      renderTemplate(find('usage.limit.reached', 'SMS', locale), { metric, limit, upgradeLink: LINK }, { locale }).text;
    expect(text('en', 'storiesCreated', 1)).toContain('limit of 1 story this month');
    expect(text('en', 'videosGenerated', 1000)).toContain('limit of 1,000 videos this month');
    expect(text('fr', 'storiesCreated', 1).replace(/\u202f/g, ' ')).toContain('limite de 1 histoire ce mois-ci');
    expect(text('fr', 'videosGenerated', 1000).replace(/\u202f/g, ' ')).toContain('limite de 1 000 vidéos ce mois-ci');
  });

  it('an SMS stays short with ordinary values', () => {
    for (const spec of DEFAULT_TEMPLATE_KEYS) {
      const values: Record<string, string | number> = {};
      for (const v of spec.variables) {
        values[v.name] = 'values' in v ? v.values[0] : v.type === 'number' ? 3 : v.type === 'date' ? '2025-03-01T18:30:00Z' : v.type === 'url' ? 'https://sl.example/a1b2c3' : 'Ada';
      }
      for (const locale of DEFAULT_LOCALES) {
        expect(renderTemplate(find(spec.key, 'SMS', locale), values, { locale }).text.length, `${spec.key} ${locale}`).toBeLessThanOrEqual(160);
      }
    }
  });
});
