import { IntlMessageFormat, type Options } from 'intl-messageformat';

/**
 * Walks over the ICU AST that intl-messageformat parses. The node shapes are those of
 * @formatjs/icu-messageformat-parser, intl-messageformat's own dependency rather than ours, so
 * they are described here structurally instead of imported (a pnpm-style layout would not let
 * us resolve it).
 */
export const NODE = { literal: 0, argument: 1, number: 2, date: 3, time: 4, select: 5, plural: 6, pound: 7, tag: 8 } as const;

export interface AstNode {
  type: number;
  /** The text of a literal, or the variable's name. */
  value?: string;
  /** select and plural branches. */
  options?: Record<string, { value: AstNode[] }>;
  children?: AstNode[];
}

/** How a template uses a variable, which decides the value it needs. */
export type Usage = 'argument' | 'number' | 'date' | 'select';

/**
 * Parses one part. `ignoreTag`: markup is text to us, never rich-text tags, so `<p>` needs no
 * function value and `a < b` in a text body is fine. Throws the parser's error on bad syntax.
 */
export function parseMessage(source: string, locale: string, options: Options = {}) {
  const format = new IntlMessageFormat(source, locale, undefined, { ...options, ignoreTag: true });
  return { format, ast: format.getAst() as unknown as AstNode[] };
}

/** Every variable the part names, in any branch, with how it is used. */
export function variableUsages(ast: readonly AstNode[], into = new Map<string, Set<Usage>>()): Map<string, Set<Usage>> {
  for (const node of ast) {
    const usage = usageOf(node.type);
    if (usage && node.value !== undefined) {
      const usages = into.get(node.value) ?? new Set<Usage>();
      usages.add(usage);
      into.set(node.value, usages);
    }
    for (const option of Object.values(node.options ?? {})) variableUsages(option.value, into);
    if (node.children) variableUsages(node.children, into);
  }
  return into;
}

function usageOf(type: number): Usage | null {
  switch (type) {
    case NODE.argument:
      return 'argument';
    case NODE.number:
    case NODE.plural:
      return 'number';
    case NODE.date:
    case NODE.time:
      return 'date';
    case NODE.select:
      return 'select';
    default:
      return null;
  }
}

/**
 * Literal text that looks like a placeholder: in ICU an apostrophe right before `{` or `<`
 * opens a quotation, so "l'{storyTitle}" or "d'<b>{name}</b>" prints the braces instead of the
 * value. A translator writing French is the one who hits it; the fix is ’ (or '').
 */
export function quotedPlaceholders(ast: readonly AstNode[], found: string[] = []): string[] {
  for (const node of ast) {
    if (node.type === NODE.literal) {
      for (const match of (node.value ?? '').matchAll(/\{\s*([A-Za-z_][\w]*)\s*[,}]/g)) found.push(match[1]!);
    }
    for (const option of Object.values(node.options ?? {})) quotedPlaceholders(option.value, found);
    if (node.children) quotedPlaceholders(node.children, found);
  }
  return found;
}
