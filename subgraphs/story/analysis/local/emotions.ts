/**
 * Emotions as lexicon hits. Intensity is a saturating density, not a share: weighted hits per
 * 100 words, d, become 1 − e^(−d/1.5). A story that names fear in every other sentence comes near
 * 1, one stray "afraid" in a novel rounds to 0 and is left out, and two stories can be compared
 * (a share would give every story a 1.0 emotion, however flat).
 */
import { EMOTIONS, type AnalysedEmotion, type EmotionLabel } from '../analyser.js';
import { EMOTION_LEXICON } from './emotion-lexicon.js';
import type { Doc } from './text.js';
import { INTENSIFIERS, isNegator } from './words.js';

const SATURATION = 1.5;
/** Below this many words, one emotional word would read as a whole story's mood. */
const MIN_WORDS = 100;
const NEGATION_REACH = 3;

export function findEmotions(doc: Doc): AnalysedEmotion[] {
  const scores = new Map<EmotionLabel, number>();
  const { tokens } = doc;
  for (const sentence of doc.sentences) {
    for (let k = sentence.first; k < sentence.last; k++) {
      const t = tokens[k]!;
      // Names ("Joy", "Hope") are people, not feelings.
      if (t.capitalised && !t.initial) continue;
      const senses = lookup(t.lower);
      if (!senses) continue;
      let negated = false;
      let boost = 1;
      for (let j = k - 1; j >= Math.max(sentence.first, k - NEGATION_REACH); j--) {
        if (tokens[j + 1]!.clauseStart) break;
        if (isNegator(tokens[j]!.lower)) negated = true;
        if (j === k - 1 && INTENSIFIERS.has(tokens[j]!.lower)) boost = 1.5;
      }
      // "not happy" is not joy; reading it as sadness would guess, so it counts for nothing.
      if (negated) continue;
      for (const [label, weight] of senses) scores.set(label, (scores.get(label) ?? 0) + weight * boost);
    }
  }
  const words = Math.max(tokens.length, MIN_WORDS);
  return EMOTIONS.map((label) => {
    const score = scores.get(label) ?? 0;
    const density = (score / words) * 100;
    return { label, intensity: Math.round((1 - Math.exp(-density / SATURATION)) * 100) / 100, score };
  })
    .filter((e) => e.intensity > 0)
    .sort((a, b) => b.intensity - a.intensity || b.score - a.score)
    .map(({ label, intensity }) => ({ label, intensity }));
}

const memo = new Map<string, readonly (readonly [EmotionLabel, number])[] | null>();

/** The lexicon entry of a word or of its stem: "smiled", "smiling", "tears", "happier", "sadly". */
export function lookup(word: string): readonly (readonly [EmotionLabel, number])[] | null {
  const cached = memo.get(word);
  if (cached !== undefined) return cached;
  let found: readonly (readonly [EmotionLabel, number])[] | null = null;
  for (const stem of stems(word)) {
    const senses = EMOTION_LEXICON.get(stem);
    if (senses) {
      found = senses;
      break;
    }
  }
  if (memo.size < 50_000) memo.set(word, found);
  return found;
}

/** The word, then guesses at its stem by regular English endings, likeliest first. */
export function stems(word: string): string[] {
  const out = [word];
  const undouble = (s: string) => (s.length > 2 && s.at(-1) === s.at(-2) && !/[aeiouls]/.test(s.at(-1)!) ? s.slice(0, -1) : s);
  const strip = (suffix: string, ...replacements: string[]) => {
    if (!word.endsWith(suffix) || word.length <= suffix.length + 2) return;
    const base = word.slice(0, -suffix.length);
    for (const r of replacements) out.push(base + r);
    out.push(undouble(base));
  };
  strip('iness', 'y');
  strip('ness', '');
  strip('ies', 'y');
  strip('ied', 'y');
  strip('ier', 'y');
  strip('iest', 'y');
  strip('ily', 'y');
  strip('ing', '', 'e');
  strip('ed', '', 'e');
  strip('es', '');
  strip('er', '', 'e');
  strip('est', '', 'e');
  strip('ly', '', 'le');
  strip('s', '');
  strip("'s", '');
  return out;
}
