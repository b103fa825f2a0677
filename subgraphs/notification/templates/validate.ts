import type { Options } from 'intl-messageformat';
import { parseMessage, quotedPlaceholders } from './ast.js';
import { analyzeHtml } from './html-context.js';
import { canonicalLocale } from './locale.js';
import type { TemplateDefinition, TemplatePart, TemplateProblem } from './template.js';

/**
 * What an upsert refuses, so a broken template never reaches a person: bad ICU syntax, a
 * placeholder an apostrophe turned into text, a variable where escaping cannot protect it,
 * a missing subject, a source that cannot be read. Returns every problem, [] when it is fine.
 */
export function validateTemplate(definition: TemplateDefinition): TemplateProblem[] {
  const d = definition;
  const problems: TemplateProblem[] = [];
  const add = (field: TemplateProblem['field'], message: string) => problems.push({ field, message });

  if (typeof d.key !== 'string' || !/^[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*$/.test(d.key)) {
    add('key', 'a key is lowercase words joined by dots, like collaboration.invitation.sent');
  }
  if (d.channel !== 'EMAIL' && d.channel !== 'SMS') add('channel', 'the channel is EMAIL or SMS');
  const canonical = canonicalLocale(d.locale);
  // Stored canonical, so the fallback chain (which canonicalizes) finds it by equality.
  if (canonical !== d.locale) add('locale', canonical ? `write the locale as ${canonical}` : `${String(d.locale)} is not a BCP 47 locale`);
  if (!Number.isInteger(d.version) || d.version < 0) add('version', 'the version is a whole number, 0 or more');

  if (d.channel === 'EMAIL' && !d.subject?.trim()) add('subject', 'an email needs a subject');
  if (d.channel === 'SMS' && d.subject !== undefined) add('subject', 'an SMS has no subject');
  if (d.channel === 'SMS' && d.html !== undefined) add('html', 'an SMS has no HTML body');

  switch (d.source) {
    case 'INLINE':
      if (!d.body?.trim()) add('body', 'the body is empty');
      break;
    case 'FILE':
      if (!isRelativeInside(d.sourceRef)) add('sourceRef', 'a FILE source is a relative path inside the templates folder');
      break;
    case 'URL':
      if (!isHttpUrl(d.sourceRef)) add('sourceRef', 'a URL source is an http or https address');
      break;
    default:
      add('source', 'the source is INLINE, FILE or URL');
  }

  const locale = canonical ?? 'en';
  for (const part of ['subject', 'body', 'html'] as const) {
    const text = d[part];
    // A FILE or URL body is checked when it is read (render compiles it with the same checks).
    if (typeof text === 'string' && text !== '') for (const message of checkPart(part, text, locale).problems) add(part, message);
  }
  return problems;
}

/** Parses one part and checks it; `parsed` is set when it parsed. Used at upsert and at render. */
export function checkPart(part: TemplatePart, source: string, locale: string, options: Options = {}) {
  let parsed: ReturnType<typeof parseMessage>;
  try {
    parsed = parseMessage(source, locale, options);
  } catch (error) {
    return { problems: [syntaxMessage(error)], parsed: null };
  }
  const problems = quotedPlaceholders(parsed.ast).map(
    (name) => `{${name}} is quoted text, not a variable: an apostrophe (') right before { or < starts a quotation in ICU; write ’ or ''`,
  );
  // '< and '> open a quotation as well, which silently eats the apostrophe and what follows
  // (alt='x'> loses its closing quote). Quoting < or > is never needed here: markup is text.
  if (/(?:^|[^'])'[<>]/.test(source)) {
    problems.push(`an apostrophe (') right before < or > starts a quotation in ICU; write ’ or '', or quote attributes with "`);
  }
  const html = part === 'html' ? analyzeHtml(parsed.ast) : null;
  if (html) problems.push(...html.problems);
  return { problems, parsed, linkVariables: html?.linkVariables ?? new Set<string>() };
}

function syntaxMessage(error: unknown): string {
  const e = error as { message?: string; location?: { start?: { line?: number; column?: number } } };
  const at = e.location?.start ? ` at line ${e.location.start.line}, column ${e.location.start.column}` : '';
  return `invalid ICU message syntax (${e.message ?? String(error)})${at}`;
}

export function isHttpUrl(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

/** The shape check an upsert can make without the folder; sources.ts checks the real path. */
function isRelativeInside(ref: unknown): boolean {
  if (typeof ref !== 'string' || ref.trim() === '' || ref.includes('\0')) return false;
  if (ref.startsWith('/') || ref.startsWith('\\') || /^[A-Za-z]:/.test(ref)) return false;
  return !ref.split(/[\\/]/).includes('..');
}
