import { PART_TYPE, type Formatters, type IntlMessageFormat } from 'intl-messageformat';
import { variableUsages, type Usage } from './ast.js';
import { canonicalLocale } from './locale.js';
import { describeTemplate, TemplateError, type TemplateDefinition, type TemplatePart } from './template.js';
import { checkPart, isHttpUrl } from './validate.js';

export { validateTemplate } from './validate.js';

export type TemplateValue = string | number | bigint | boolean | Date | null | undefined;
export type TemplateVariables = Readonly<Record<string, TemplateValue>>;

export interface RenderOptions {
  /** The person's locale (fr-CA), which formats dates and numbers even when the template found is "fr". */
  locale: string;
  /** IANA zone for dates and times; UTC when not given, so a server's zone never leaks into a message. */
  timeZone?: string;
}

export interface RenderedMessage {
  subject?: string;
  text: string;
  html?: string;
}

/**
 * Renders a template whose body is already resolved (sources.ts). Every variable any part
 * names must be given (null counts as missing): a template that fails only in its rarely
 * taken plural branch is worse than one that fails every time. In the HTML part each value is
 * escaped before it is formatted, so the template's markup stays and no value can add any.
 */
export function renderTemplate(definition: TemplateDefinition, variables: TemplateVariables, options: RenderOptions): RenderedMessage {
  const locale = canonicalLocale(options.locale) ?? definition.locale;
  const timeZone = options.timeZone ?? 'UTC';
  const formatters = formattersFor(timeZone);
  const parts = (['subject', 'body', 'html'] as const).filter((p) => typeof definition[p] === 'string');
  const compiledParts = parts.map((part) => compile(definition, part, locale, timeZone, formatters));

  const links = new Set<string>();
  for (const c of compiledParts) for (const name of c.linkVariables) links.add(name);
  // Own properties only: a variable named "constructor" must not find Object's.
  const given = (name: string): TemplateValue => (Object.hasOwn(variables, name) ? variables[name] : undefined);
  const missing = [...new Set(compiledParts.flatMap((c) => [...c.usages.keys()]))].filter((n) => given(n) == null);
  if (missing.length > 0) {
    throw new TemplateError('MISSING_VARIABLE', `${describeTemplate(definition)} needs ${missing.join(', ')}`, missing);
  }

  const context: Context = { locale, formatters, links, definition, given };
  const out: RenderedMessage = { text: '' };
  for (const c of compiledParts) {
    const rendered = format(c, context);
    if (c.part === 'subject') out.subject = rendered.replace(/\s*[\r\n]+\s*/g, ' ').trim(); // a newline in a header is an injected header
    else if (c.part === 'body') out.text = rendered;
    else out.html = rendered;
  }
  return out;
}

/** Escapes a value for HTML text and for quoted attribute values (both quote kinds). */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (ch) => ESCAPES[ch]!);
}
const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/**
 * A variable that carries a link: one that opens a URL attribute in the HTML, or one named so
 * (inviteLink, storyUrl), so the text part and the SMS refuse a javascript: link as well.
 */
const isLinkName = (name: string) => /(?:Link|Url|URL)$|^(?:link|url)$/.test(name);

interface Compiled {
  part: TemplatePart;
  source: string;
  format: IntlMessageFormat;
  usages: Map<string, Set<Usage>>;
  linkVariables: Set<string>;
}

interface Context {
  locale: string;
  formatters: Formatters;
  links: Set<string>;
  definition: TemplateDefinition;
  given: (name: string) => TemplateValue;
}

/**
 * Compiled messages by key, channel, template locale, version, rendering locale, part and zone.
 * The source is compared too: a URL body can change under the same version, and a stored
 * template may share a version number with another copy. Bounded, least recently used first out.
 */
const compiled = new Map<string, Compiled>();
const COMPILED_MAX = 1_000;

function compile(d: TemplateDefinition, part: TemplatePart, locale: string, timeZone: string, formatters: Formatters): Compiled {
  const source = d[part]!;
  const cacheKey = [d.key, d.channel, d.locale, d.version, locale, part, timeZone].join('\u0000');
  const hit = compiled.get(cacheKey);
  if (hit && hit.source === source) {
    compiled.delete(cacheKey);
    compiled.set(cacheKey, hit);
    return hit;
  }
  const checked = checkPart(part, source, locale, { formatters });
  if (!checked.parsed || checked.problems.length > 0) {
    throw new TemplateError('INVALID_TEMPLATE', `${describeTemplate(d)} ${part}: ${checked.problems.join('; ')}`);
  }
  const entry: Compiled = {
    part,
    source,
    format: checked.parsed.format,
    usages: variableUsages(checked.parsed.ast),
    linkVariables: checked.linkVariables ?? new Set(),
  };
  compiled.set(cacheKey, entry);
  if (compiled.size > COMPILED_MAX) compiled.delete(compiled.keys().next().value!);
  return entry;
}

function format(c: Compiled, ctx: Context): string {
  const html = c.part === 'html';
  const values: Record<string, unknown> = {};
  for (const [name, usages] of c.usages) values[name] = prepare(name, ctx.given(name), usages, html, ctx);
  let out = '';
  for (const part of c.format.formatToParts<unknown>(values as never)) {
    // Literal parts hold the template's text and the values already prepared (escaped for HTML);
    // an object part is a Date or a boxed number in a plain {argument}, formatted here.
    if (part.type === PART_TYPE.literal) out += part.value;
    else {
      const text =
        part.value instanceof Date
          ? formatDate(part.value, ctx)
          : part.value instanceof Number
            ? ctx.formatters.getNumberFormat(ctx.locale).format(part.value.valueOf())
            : String(part.value);
      out += html ? escapeHtml(text) : text;
    }
  }
  return out;
}

/** The value a variable takes for how the part uses it; throws INVALID_VARIABLE naming it. */
function prepare(name: string, value: TemplateValue, usages: Set<Usage>, html: boolean, ctx: Context): unknown {
  const invalid = (why: string) => new TemplateError('INVALID_VARIABLE', `${describeTemplate(ctx.definition)}: ${name} ${why}`, [name]);
  if ((ctx.links.has(name) || isLinkName(name)) && !isHttpUrl(value)) throw invalid('must be an http(s) URL');
  if (usages.has('date')) {
    const date = toDate(value);
    if (!date) throw invalid('must be a Date or an ISO-8601 date string');
    return date;
  }
  if (usages.has('number') || typeof value === 'number' || typeof value === 'bigint') {
    const number = toNumber(value);
    if (number === null) throw invalid('must be a number');
    // Boxed, so a number used both as {n, plural} and as a plain {n} is right in both: plural
    // and number formatting unbox it, and a plain argument hands an object back to format(),
    // which groups it as the locale writes it (a bare number would come out as String(n)).
    return typeof number === 'number' ? new Number(number) : number;
  }
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw invalid('is an invalid Date');
    return value;
  }
  if (typeof value === 'boolean') return String(value);
  if (typeof value !== 'string') throw invalid(`cannot be a ${typeof value}`);
  return html ? escapeHtml(value) : value;
}

const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;

function toDate(value: TemplateValue): Date | null {
  const date = value instanceof Date ? value : typeof value === 'string' && ISO_DATE.test(value) ? new Date(value) : null;
  return date && !Number.isNaN(date.getTime()) ? date : null;
}

function toNumber(value: TemplateValue): number | bigint | null {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  // Event payloads arrive as JSON; a count may have been written as a string.
  if (typeof value === 'string' && /^-?\d+(?:\.\d+)?$/.test(value)) return Number(value);
  return null;
}

function formatDate(date: Date, ctx: Context): string {
  return ctx.formatters.getDateTimeFormat(ctx.locale, { dateStyle: 'medium', timeStyle: 'short' }).format(date);
}

/**
 * intl-messageformat's formatters with our time zone added to every date and time format (its
 * own use the process's zone). One set per zone, shared by every compiled message, so the
 * Intl objects are built once.
 */
const formattersByZone = new Map<string, Formatters>();

function formattersFor(timeZone: string): Formatters {
  const known = formattersByZone.get(timeZone);
  if (known) return known;
  // Fails here, naming the zone, rather than deep inside a format call.
  new Intl.DateTimeFormat('en', { timeZone });
  const memo = <A extends unknown[], R>(make: (...args: A) => R) => {
    const cache = new Map<string, R>();
    return (...args: A): R => {
      const key = JSON.stringify(args);
      let made = cache.get(key);
      if (made === undefined) cache.set(key, (made = make(...args)));
      return made;
    };
  };
  const formatters: Formatters = {
    getNumberFormat: memo((locales?: string | string[], opts?: object) => new Intl.NumberFormat(locales, opts as Intl.NumberFormatOptions)),
    getDateTimeFormat: memo((locales?: string | string[], opts?: Intl.DateTimeFormatOptions) => new Intl.DateTimeFormat(locales, { ...opts, timeZone })),
    getPluralRules: memo((locales?: string | string[], opts?: Intl.PluralRulesOptions) => new Intl.PluralRules(locales, opts)),
  };
  formattersByZone.set(timeZone, formatters);
  return formatters;
}
