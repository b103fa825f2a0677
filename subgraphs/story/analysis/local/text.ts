/**
 * The story as sentences and words with their positions: every other part of the local analyser
 * reads this. One linear pass over the text, so a long story costs no more than its length.
 */
import { ABBREVIATIONS } from './words.js';

export interface Token {
  /** As written, a possessive "'s" removed ("Mira" for "Mira's"). */
  text: string;
  /** Lowercase, curly apostrophes straightened: what the word lists hold. */
  lower: string;
  start: number;
  end: number;
  sentence: number;
  /** First word of a sentence or of a quotation, or after a colon: capitalised there whatever it is. */
  initial: boolean;
  capitalised: boolean;
  allCaps: boolean;
  possessive: boolean;
  /** Only spaces (or an abbreviation's full stop) since the previous word: the two may form one name. */
  joined: boolean;
  /** Punctuation since the previous word: a negation before it does not reach past. */
  clauseStart: boolean;
  quoted: boolean;
}

export interface Sentence {
  index: number;
  start: number;
  end: number;
  /** Tokens [first, last) of Doc.tokens. */
  first: number;
  last: number;
  paragraph: number;
  /** A line of its own without closing punctuation ("Chapter Two", "The Long Night"). */
  heading: boolean;
  /** Share of its words inside quotation marks: dialogue rather than narration. */
  quoted: number;
}

export interface Doc {
  text: string;
  sentences: Sentence[];
  tokens: Token[];
}

const TERMINAL = new Set(['.', '!', '?', '…']);
const CLOSERS = new Set(['"', "'", '”', '’', ')', ']', '»']);
const OPENERS_OF_LINE = new Set(['"', '“', '‘', '«', '—', '–', '-', '*', '•', '#', '(']);
const WORD = /[\p{L}\p{M}\p{N}]+(?:['’\-‐][\p{L}\p{M}\p{N}]+)*/gu;
const isSpace = (c: string | undefined) => c !== undefined && /\s/.test(c);
const isLower = (c: string | undefined) => c !== undefined && /\p{Ll}/u.test(c);

export function readStory(raw: string): Doc {
  const text = raw.replace(/\r\n?/g, '\n');
  const inQuote = quotedChars(text);
  const spans = splitSentences(text);
  const sentences: Sentence[] = [];
  const tokens: Token[] = [];
  // One scan for words over the whole text (a scan per sentence costs more than the words in it).
  const words = new RegExp(WORD.source, 'gu');
  let span = 0;
  let first = 0;
  let quotedWords = 0;
  let previousEnd = 0;
  const close = () => {
    const s = spans[span]!;
    if (tokens.length > first) {
      const last = tokens.length;
      sentences.push({
        index: sentences.length, start: s.start, end: s.end, first, last, paragraph: s.paragraph,
        heading: isHeading(text, s, tokens, first, last),
        quoted: quotedWords / (last - first),
      });
    }
    span++;
    first = tokens.length;
    quotedWords = 0;
  };
  for (let match = words.exec(text); match; match = words.exec(text)) {
    const start = match.index;
    while (span < spans.length && start >= spans[span]!.end) close();
    if (span >= spans.length) break;
    if (start < spans[span]!.start) continue;
    if (tokens.length === first) previousEnd = spans[span]!.start;
    let word = match[0];
    const possessive = word.length > 2 && /['’][sS]$/.test(word);
    if (possessive) word = word.slice(0, -2);
    const gap = text.slice(previousEnd, start);
    const previous = tokens.length > first ? tokens[tokens.length - 1] : undefined;
    const quoted = inQuote[start] === 1;
    if (quoted) quotedWords++;
    const lower = word.toLowerCase();
    const upper = word.toUpperCase();
    const plain = gap === ' '; // most gaps: skip the regular expressions
    tokens.push({
      text: word,
      lower: lower.includes('’') ? lower.replace(/’/g, "'") : lower,
      start,
      end: start + match[0].length,
      sentence: sentences.length,
      initial: !previous || (!plain && /[“‘«"]$|(?:^|\s)'$|:\s+$/.test(gap)),
      capitalised: word[0] !== lower[0] && word[0] === upper[0],
      allCaps: word.length > 1 && word === upper && word !== lower,
      possessive,
      joined: !!previous && (plain || /^\s+$/.test(gap) || (ABBREVIATIONS.has(previous.lower) && /^\.\s+$/.test(gap))),
      clauseStart: !previous || (!plain && /[,;:()[\]"“”—–]|\s-\s/.test(gap)),
      quoted,
    });
    previousEnd = start + match[0].length;
  }
  while (span < spans.length) close();
  return { text, sentences, tokens };
}

/** Marks characters inside “…” or "…"; a paragraph break closes any quote (speech running on opens it again). */
function quotedChars(text: string): Uint8Array {
  const marks = new Uint8Array(text.length);
  let open = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '“') open = true;
    else if (c === '”') open = false;
    else if (c === '"') open = !open;
    else if (c === '\n' && text[i + 1] === '\n') open = false;
    if (open) marks[i] = 1;
  }
  return marks;
}

interface Span {
  start: number;
  end: number;
  paragraph: number;
}

function splitSentences(text: string): Span[] {
  const spans: Span[] = [];
  const n = text.length;
  let paragraph = 0;
  let start = 0;
  const cut = (end: number, next: number) => {
    let e = end;
    while (e > start && isSpace(text[e - 1])) e--;
    let s = start;
    while (s < e && isSpace(text[s])) s++;
    if (e > s) spans.push({ start: s, end: e, paragraph });
    start = next;
  };
  let i = 0;
  while (i < n) {
    const c = text[i]!;
    if (c === '\n') {
      let j = i;
      let newlines = 0;
      while (j < n && isSpace(text[j])) if (text[j++] === '\n') newlines++;
      if (newlines >= 2) {
        cut(i, j);
        paragraph++;
      } else if (lineBreakEndsSentence(text, start, i, j)) cut(i, j);
      i = j;
      continue;
    }
    if (!TERMINAL.has(c)) {
      i++;
      continue;
    }
    let j = i;
    while (j < n && TERMINAL.has(text[j]!)) j++;
    while (j < n && CLOSERS.has(text[j]!)) j++;
    // "3.14", "...and", or a newline (the branch above decides those).
    if (j >= n || !isSpace(text[j]) || text[j] === '\n') {
      i = j;
      continue;
    }
    let k = j;
    while (k < n && (text[k] === ' ' || text[k] === '\t' || text[k] === '\u00a0')) k++;
    if (text[k] === '\n') {
      i = k;
      continue;
    }
    // '"Run!" said Mira' goes on; so does "Mr. Darcy" and "J. R. Hale".
    const goesOn = isLower(text[k]) || (c === '.' && j === i + 1 && isAbbreviation(text, i));
    if (!goesOn) cut(j, k);
    i = k;
  }
  cut(n, n);
  return spans;
}

function isAbbreviation(text: string, dot: number): boolean {
  let s = dot;
  while (s > 0 && /\p{L}/u.test(text[s - 1]!)) s--;
  const word = text.slice(s, dot);
  return ABBREVIATIONS.has(word.toLowerCase()) || (word.length === 1 && word !== 'I' && /\p{Lu}/u.test(word));
}

/** A single line break ends a sentence after closing punctuation, before dialogue, or after a short title line; otherwise it is a hard wrap. */
function lineBreakEndsSentence(text: string, sentenceStart: number, at: number, next: number): boolean {
  let p = at - 1;
  while (p >= sentenceStart && isSpace(text[p])) p--;
  const before = text[p];
  if (before === undefined || p < sentenceStart) return true;
  if (TERMINAL.has(before) || CLOSERS.has(before) || before === ':') return true;
  if (OPENERS_OF_LINE.has(text[next] ?? '')) return true;
  const lineStart = text.lastIndexOf('\n', at - 1) + 1;
  return at - lineStart < 50 && /\p{Lu}/u.test(text[next] ?? '');
}

function isHeading(text: string, span: Span, tokens: Token[], first: number, last: number): boolean {
  if (last - first > 10) return false;
  const lastChar = text[span.end - 1]!;
  if (TERMINAL.has(lastChar) || CLOSERS.has(lastChar) || lastChar === ',') return false;
  const lineBefore = text.slice(text.lastIndexOf('\n', span.start - 1) + 1, span.start);
  const lineEnd = text.indexOf('\n', span.end);
  const lineAfter = text.slice(span.end, lineEnd === -1 ? text.length : lineEnd);
  if (lineBefore.trim() || lineAfter.trim()) return false;
  if (/^(chapter|part|book|prologue|epilogue)$/.test(tokens[first]!.lower)) return true;
  let capitalised = 0;
  for (let k = first; k < last; k++) if (tokens[k]!.capitalised) capitalised++;
  return capitalised * 2 >= last - first;
}

/** The sentence's text, whitespace collapsed. */
export const sentenceText = (doc: Doc, s: Sentence): string => doc.text.slice(s.start, s.end).replace(/\s+/g, ' ');
