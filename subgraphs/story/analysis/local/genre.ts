/**
 * The genre with the highest keyword density: weighted cue hits per 1000 words, so a novel and a
 * flash piece compare on the same scale, plus the title's cues at a fixed bonus (a title names
 * its genre more often than any sentence). Nothing above the floor: drama for a dark story,
 * slice-of-life otherwise.
 */
import { GENRES, type AnalysedEmotion, type Genre } from '../analyser.js';
import { GENRE_PHRASES, GENRE_WORDS, type GenreCue } from './genre-lexicon.js';
import type { Doc } from './text.js';

/** Density (weighted hits per 1000 words) a genre needs to be named rather than defaulted. */
const FLOOR = 6;
/** Short texts are scored as if this long: one "dragon" in a paragraph is a hint, not a verdict. */
const MIN_WORDS = 250;
const TITLE_BONUS = 5;
const EARLY_YEAR = /^(1[0-8]\d\d|19[0-4]\d)s?$/;

export function findGenre(doc: Doc, title: string, skip: ReadonlySet<number>, emotions: AnalysedEmotion[]): Genre {
  const density = new Map<Genre, number>();
  const add = (cues: readonly GenreCue[] | undefined, times: number) => {
    for (const { genre, weight } of cues ?? []) density.set(genre, (density.get(genre) ?? 0) + weight * times);
  };

  const body = doc.tokens.map((t, i) => (skip.has(i) ? '|' : t.lower));
  const scale = 1000 / Math.max(body.length, MIN_WORDS);
  for (const word of body) {
    add(cuesOf(word), scale);
    if (EARLY_YEAR.test(word)) add([{ genre: 'historical', weight: 2 }], scale);
  }
  countPhrases(body, (cues) => add(cues, scale));

  const titleWords = [...title.matchAll(/[\p{L}\p{N}]+(?:['’-][\p{L}\p{N}]+)*/gu)].map((m) => m[0].toLowerCase());
  for (const word of titleWords) add(cuesOf(word), TITLE_BONUS);
  countPhrases(titleWords, (cues) => add(cues, TITLE_BONUS));

  let best: Genre | null = null;
  for (const genre of GENRES) if ((density.get(genre) ?? 0) > (best ? density.get(best)! : FLOOR - 1e-9)) best = genre;
  if (best) return best;
  const felt = (labels: string[]) => emotions.filter((e) => labels.includes(e.label)).reduce((sum, e) => sum + e.intensity, 0);
  return felt(['sadness', 'anger', 'fear', 'disgust']) > felt(['joy', 'trust']) ? 'drama' : 'slice-of-life';
}

function cuesOf(word: string): readonly GenreCue[] | undefined {
  return GENRE_WORDS.get(word) ?? (word.endsWith('es') ? GENRE_WORDS.get(word.slice(0, -2)) : undefined) ?? (word.endsWith('s') ? GENRE_WORDS.get(word.slice(0, -1)) : undefined);
}

function countPhrases(words: string[], found: (cues: readonly GenreCue[]) => void): void {
  const stream = ` ${words.join(' ')} `;
  for (const [phrase, cues] of GENRE_PHRASES) {
    const needle = ` ${phrase} `;
    for (let at = stream.indexOf(needle); at !== -1; at = stream.indexOf(needle, at + needle.length - 1)) found(cues);
  }
}
