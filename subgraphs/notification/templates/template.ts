import type { Channel } from '../preferences.rules.js';

/**
 * A notification template: one version of one message, per key (the event it tells about),
 * channel and locale. The body is ICU MessageFormat; where its text lives is the source.
 */

/**
 * Where the body's text lives:
 * - INLINE: in `body` itself (the caller stores it in the database).
 * - FILE: a file under the configured templates folder; `sourceRef` is its path relative to it.
 * - URL: an http(s) document; `sourceRef` is its address.
 * For FILE and URL only `body` comes from the source (sources.ts); subject and html stay inline.
 */
export type TemplateSource = 'INLINE' | 'FILE' | 'URL';

export interface TemplateDefinition {
  /** The event it tells about, e.g. "collaboration.invitation.sent". */
  key: string;
  channel: Channel;
  /** A BCP 47 tag, canonical ("fr", "fr-CA"). */
  locale: string;
  /** A stored template's versions start at 1; the built-in defaults are version 0. */
  version: number;
  /** EMAIL only. */
  subject?: string;
  /** The plain-text body: the email's text part, or the SMS. Empty until resolved for FILE and URL. */
  body: string;
  /** EMAIL only: markup is the template's own; every variable is escaped when rendered. */
  html?: string;
  source: TemplateSource;
  /** FILE: a path relative to the templates folder; URL: an http(s) address. */
  sourceRef?: string;
}

/** The port to stored templates (the database-backed adapter comes with the subgraph). */
export interface TemplateStore {
  /** The newest version for exactly this key, channel and locale (no fallback), or null. */
  find(key: string, channel: Channel, locale: string): Promise<TemplateDefinition | null>;
}

/** The parts of a template that are rendered, each its own ICU message. */
export type TemplatePart = 'subject' | 'body' | 'html';

/**
 * Why rendering or resolving failed, as a stable code (STYLE 3):
 * - INVALID_TEMPLATE: the template itself is wrong (ICU syntax, an unsafe HTML position).
 * - MISSING_VARIABLE / INVALID_VARIABLE: the values given do not fit the template.
 * - SOURCE_REFUSED: a FILE or URL source we will not read (outside the folder, not http(s), too large).
 * - SOURCE_UNAVAILABLE: a source we would read but could not (not found, HTTP error, timeout).
 */
export type TemplateErrorCode = 'INVALID_TEMPLATE' | 'MISSING_VARIABLE' | 'INVALID_VARIABLE' | 'SOURCE_REFUSED' | 'SOURCE_UNAVAILABLE';

export class TemplateError extends Error {
  constructor(
    readonly code: TemplateErrorCode,
    message: string,
    /** The variables concerned (MISSING_VARIABLE, INVALID_VARIABLE). */
    readonly variables: readonly string[] = [],
  ) {
    super(message);
    this.name = 'TemplateError';
  }
}

/** One thing wrong with a template, for an upsert to return as a userError on `field`. */
export interface TemplateProblem {
  field: TemplatePart | 'key' | 'channel' | 'locale' | 'version' | 'source' | 'sourceRef';
  message: string;
}

/** Names a template in messages: "collaboration.invitation.sent EMAIL fr v3". */
export const describeTemplate = (d: Pick<TemplateDefinition, 'key' | 'channel' | 'locale' | 'version'>) =>
  `${d.key} ${d.channel} ${d.locale} v${d.version}`;
