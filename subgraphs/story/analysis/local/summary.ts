/**
 * An extractive summary: the sentences whose words are the story's most frequent content words,
 * with a lift for those naming the main characters and for the opening (stories state their
 * premise early), kept in story order. Dialogue and very short or long sentences are held back:
 * they summarise badly out of context.
 */
import type { FoundCharacter } from './characters.js';
import { clip } from './describe.js';
import { sentenceText, type Doc, type Sentence } from './text.js';
import { STOPWORDS } from './words.js';

const MAX_SENTENCES = 3;
const PRONOUNS = new Set(['he', 'she', 'it', 'they', 'his', 'her', 'their', 'its', 'him', 'them']);
/** How alike two chosen sentences may be (shared content words over all of theirs). */
const MAX_OVERLAP = 0.5;

const contentWord = (lower: string) => (lower.length > 2 && !STOPWORDS.has(lower) && !/^\d+$/.test(lower) ? lower.replace(/(?<=..)(?:es|s)$/, '') : null);

export function summarise(doc: Doc, characters: FoundCharacter[], maxChars: number): string {
  const frequency = new Map<string, number>();
  for (const t of doc.tokens) {
    const word = contentWord(t.lower);
    if (word) frequency.set(word, (frequency.get(word) ?? 0) + 1);
  }
  let top = 1;
  for (const count of frequency.values()) top = Math.max(top, count);
  const mainCharacters = new Map<number, number>();
  characters.slice(0, 3).forEach((c, who) => c.mentions.forEach((m) => mainCharacters.set(m.first, who)));

  const lastParagraph = doc.sentences.at(-1)?.paragraph ?? 0;
  const candidates = doc.sentences
    .filter((s) => !s.heading && s.last - s.first >= 4)
    .map((s) => {
      const words = new Set<string>();
      const who = new Set<number>();
      for (let k = s.first; k < s.last; k++) {
        const word = contentWord(doc.tokens[k]!.lower);
        if (word) words.add(word);
        const c = mainCharacters.get(k);
        if (c !== undefined) who.add(c);
      }
      let weight = 0;
      for (const word of words) weight += frequency.get(word)! / top;
      return { s, words, who: who.size, base: weight / Math.sqrt(Math.max(words.size, 4)) };
    });
  const strongest = candidates.reduce((max, c) => Math.max(max, c.base), 1e-9);
  const scored = candidates.map((c) => {
    const length = c.s.last - c.s.first;
    let score = c.base / strongest + Math.min(c.who, 2) * 0.15;
    if (c.s === candidates[0]?.s) score += 0.45;
    else if (c.s.paragraph === 0) score += 0.1;
    if (c.s.paragraph === lastParagraph && lastParagraph > 0) score += 0.05;
    score -= c.s.quoted * 0.6;
    if (opensWithPronoun(doc, c.s)) score -= 0.15;
    if (length < 7 || length > 45) score -= 0.2;
    return { ...c, score };
  });
  scored.sort((a, b) => b.score - a.score || a.s.index - b.s.index);

  const chosen: typeof scored = [];
  let length = 0;
  for (const c of scored) {
    if (chosen.length === MAX_SENTENCES) break;
    const text = sentenceText(doc, c.s);
    if (length + text.length + (chosen.length ? 1 : 0) > maxChars) continue;
    if (chosen.some((other) => overlap(other.words, c.words) > MAX_OVERLAP)) continue;
    chosen.push(c);
    length += text.length + (chosen.length > 1 ? 1 : 0);
  }
  if (!chosen.length) return clip(sentenceText(doc, (scored[0] ?? { s: doc.sentences[0]! }).s), maxChars);
  return chosen
    .sort((a, b) => a.s.index - b.s.index)
    .map((c) => sentenceText(doc, c.s))
    .join(' ');
}

/** "She asked Pell…", "When he saw Mira…": out of context the reader of a summary asks who. */
function opensWithPronoun(doc: Doc, s: Sentence): boolean {
  for (let k = s.first; k < Math.min(s.last, s.first + 4); k++) {
    const t = doc.tokens[k]!;
    if (PRONOUNS.has(t.lower)) return true;
    if (t.capitalised && !t.initial) return false;
  }
  return false;
}

function overlap(a: Set<string>, b: Set<string>): number {
  let shared = 0;
  for (const word of a) if (b.has(word)) shared++;
  return shared / Math.max(1, a.size + b.size - shared);
}
