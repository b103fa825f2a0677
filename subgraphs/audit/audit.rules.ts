import { badInput } from '../../platform/errors.js';

/**
 * How the event log matches an event type: `exact` compares for equality (an index-friendly
 * `=`), `regex` is a PostgreSQL (and JavaScript) regular expression for `~`.
 */
export type TypeMatch = { exact: string } | { regex: string };

const MAX_PATTERN_LENGTH = 200;
const REGEX_SPECIAL = /[\\^$.|?*+()[\]{}]/g;

/**
 * Translates a NATS-style type pattern (as consumers subscribe with: `user.*`, `story.>`, or a
 * plain type) into a match. Tokens are separated by dots and must not be empty; `*` and `>`
 * are wildcards only as whole tokens (NATS reads `us*r` literally, which no event type
 * spells, so it is refused as a likely mistake), and `>` only as the last token.
 */
export function typeMatch(pattern: string): TypeMatch {
  const tokens = pattern.split('.');
  const invalid = (why: string) => badInput(`type ${JSON.stringify(pattern)} is not a valid pattern: ${why}`, 'type');
  if (pattern.length > MAX_PATTERN_LENGTH) throw invalid(`longer than ${MAX_PATTERN_LENGTH} characters`);
  tokens.forEach((token, i) => {
    if (token === '') throw invalid('empty token');
    if (/\s/.test(token)) throw invalid('white space');
    if (token === '>' && i < tokens.length - 1) throw invalid('">" must be the last token');
    if (token !== '*' && token !== '>' && /[*>]/.test(token)) throw invalid('"*" and ">" must be whole tokens');
  });
  if (!tokens.some((t) => t === '*' || t === '>')) return { exact: pattern };
  const parts = tokens.map((token) => (token === '*' ? '[^.]+' : token === '>' ? '.+' : token.replace(REGEX_SPECIAL, '\\$&')));
  return { regex: `^${parts.join('\\.')}$` };
}
