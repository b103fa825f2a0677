/**
 * Splitting a story that is too long for one model call, and merging what the model said about
 * each part. Pure, so both are tested on their own (chunking.unit.test.ts) and the adapter only
 * moves text to and from the API.
 */
import { EMOTIONS, type AnalysedCharacter, type AnalysedEmotion, type Genre } from './analyser.js';

/**
 * Places a part may end, best first. Each pattern matches the separator; the cut goes after it,
 * so the separator stays with the text before it and the next part starts with new text.
 */
const BOUNDARIES: readonly RegExp[] = [
  // A blank line: the author's own paragraph break.
  /\n[^\S\n]*\n\s*/g,
  // A single line break: dialogue and verse often have no blank lines.
  /\n\s*/g,
  // The end of a sentence, with any closing quotes or brackets after the stop.
  /[.!?…]+["'”’»)\]]*\s+/g,
  // Scripts that end sentences without a following space (Chinese, Japanese).
  /[。！？]+[」』）]*/g,
  // Between words.
  /\s+/g,
];

/**
 * Splits `text` into consecutive slices of at most `maxChars` UTF-16 units, cutting at a
 * paragraph break if one falls in the second half of a slice, else at a line break, a sentence
 * end, a space, and only failing all of those mid-word. Slices are contiguous and lossless:
 * `splitForModel(t, n).join('') === t`, so a caller can tell how much of the text a prefix of
 * the slices covers. A boundary in the first half is passed over because a much shorter slice
 * would only add parts (and model calls) without making any part read better.
 */
export function splitForModel(text: string, maxChars: number): string[] {
  if (!Number.isInteger(maxChars) || maxChars < 1) throw new RangeError(`maxChars must be a positive integer, got ${maxChars}`);
  const parts: string[] = [];
  let start = 0;
  while (text.length - start > maxChars) {
    const end = start + cutLength(text.slice(start, start + maxChars + 1), maxChars);
    parts.push(text.slice(start, end));
    start = end;
  }
  if (start < text.length) parts.push(text.slice(start));
  return parts;
}

/**
 * How long the next slice is, given a window of `maxChars + 1` characters: the extra character
 * shows whether a separator ends exactly at the limit (a cut right before a space is as good as
 * one after it).
 */
function cutLength(window: string, maxChars: number): number {
  const minChars = Math.ceil(maxChars / 2);
  for (const boundary of BOUNDARIES) {
    let best = -1;
    for (const match of window.matchAll(boundary)) {
      // Whitespace past the limit may be left for the next slice; punctuation may not.
      if (match.index + match[0].trimEnd().length > maxChars) break;
      const end = Math.min(match.index + match[0].length, maxChars);
      if (end >= minChars) best = end;
    }
    if (best > 0) return best;
  }
  // Never split a surrogate pair: half an emoji is not text.
  const last = window.charCodeAt(maxChars - 1);
  return last >= 0xd800 && last <= 0xdbff && maxChars > 1 ? maxChars - 1 : maxChars;
}

/** What the model said about one part, and how much of the story the part holds. */
export interface PartAnalysis {
  genre: Genre;
  characters: AnalysedCharacter[];
  emotions: AnalysedEmotion[];
  /** Characters of story text in the part: longer parts count for more. */
  weight: number;
}

export const MAX_CHARACTERS = 12;
/** Traits are unioned across parts; past this many a character reads like a word cloud. */
export const MAX_TRAITS = 8;

/**
 * Merges per-part analyses into one, and tidies a single one the same way (a model can repeat a
 * character or an emotion, or stray outside 0..1):
 * - characters are the same character when their names match ignoring case and spacing; the
 *   first spelling and first non-empty description are kept, traits are unioned (lowercase);
 *   ranked by how many parts they appear in, then by first appearance; at most 12;
 * - an emotion's intensity is clamped to 0..1 per part (first mention of a label in a part
 *   wins), then averaged over all parts weighted by length, a part that omits it counting as 0;
 *   zeros dropped, strongest first;
 * - the genre is the length-weighted vote, a tie going to the genre named first.
 */
export function mergePartAnalyses(parts: PartAnalysis[]): { genre: Genre; characters: AnalysedCharacter[]; emotions: AnalysedEmotion[] } {
  if (parts.length === 0) throw new RangeError('mergePartAnalyses needs at least one part');
  const totalWeight = parts.reduce((sum, p) => sum + Math.max(0, p.weight), 0);
  // Parts of no length (should not happen) would otherwise divide by zero: count them equally.
  const weightOf = (p: PartAnalysis) => (totalWeight > 0 ? Math.max(0, p.weight) / totalWeight : 1 / parts.length);

  const votes = new Map<Genre, number>();
  const intensities = new Map<AnalysedEmotion['label'], number>();
  const characters = new Map<string, { name: string; description: string; traits: Set<string>; parts: Set<number>; first: number }>();
  let seen = 0;

  parts.forEach((part, index) => {
    const weight = weightOf(part);
    votes.set(part.genre, (votes.get(part.genre) ?? 0) + weight);

    const labelled = new Set<string>();
    for (const emotion of part.emotions) {
      if (labelled.has(emotion.label)) continue;
      labelled.add(emotion.label);
      intensities.set(emotion.label, (intensities.get(emotion.label) ?? 0) + clamp01(emotion.intensity) * weight);
    }

    for (const character of part.characters) {
      const name = character.name.trim().replace(/\s+/g, ' ');
      if (!name) continue;
      const key = name.toLocaleLowerCase();
      let merged = characters.get(key);
      if (!merged) {
        merged = { name, description: '', traits: new Set(), parts: new Set(), first: seen++ };
        characters.set(key, merged);
      }
      merged.parts.add(index);
      if (!merged.description) merged.description = character.description.trim();
      for (const trait of character.traits) {
        const t = trait.trim().replace(/\s+/g, ' ').toLocaleLowerCase();
        if (t && merged.traits.size < MAX_TRAITS) merged.traits.add(t);
      }
    }
  });

  let genre = parts[0]!.genre;
  for (const [candidate, weight] of votes) if (weight > votes.get(genre)!) genre = candidate;

  return {
    genre,
    characters: [...characters.values()]
      .sort((a, b) => b.parts.size - a.parts.size || a.first - b.first)
      .slice(0, MAX_CHARACTERS)
      .map((c) => ({ name: c.name, description: c.description, traits: [...c.traits] })),
    emotions: [...intensities]
      .map(([label, intensity]) => ({ label, intensity: Math.round(intensity * 1000) / 1000 }))
      .filter((e) => e.intensity > 0)
      .sort((a, b) => b.intensity - a.intensity || EMOTIONS.indexOf(a.label) - EMOTIONS.indexOf(b.label)),
  };
}

function clamp01(value: number): number {
  return Number.isFinite(value) ? Math.min(1, Math.max(0, value)) : 0;
}
