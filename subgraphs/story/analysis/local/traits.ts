/**
 * Character traits: adjectives from a curated list, taken only where the sentence ties them to
 * the name ("Mira was curious", "brave Mira", "Old Tom, who was stubborn", "Tom smiled kindly"),
 * so the adjectives of the furniture ("an old map", "the quiet house") stay out.
 */
import type { FoundCharacter } from './characters.js';
import type { Doc } from './text.js';
import { isNegator, wordSet } from './words.js';

/** Dispositions rather than passing states ("angry" now) or looks ("tall"). */
export const TRAIT_WORDS = wordSet(`
  brave bold courageous fearless daring heroic adventurous reckless curious inquisitive kind gentle caring
  compassionate generous warm-hearted kind-hearted tender loving loyal faithful devoted honest truthful sincere trustworthy reliable dutiful
  cruel ruthless vicious heartless cold-hearted callous selfish greedy jealous envious vain arrogant proud haughty boastful
  clever smart bright brilliant wise shrewd cunning sly crafty resourceful observant sharp methodical meticulous
  logical practical sensible thoughtful shy timid bashful quiet reserved withdrawn nervous anxious cautious careful
  fearful stubborn determined persistent patient impatient restless ambitious lazy diligent hardworking tireless
  cheerful jolly optimistic hopeful gloomy grumpy moody bitter sullen stern strict gruff grim serious solemn
  playful mischievous funny witty silly foolish naive innocent humble modest polite rude charming friendly
  mysterious secretive suspicious lonely ancient wild fierce calm steady confident awkward clumsy graceful nimble
  eager dreamy imaginative creative talkative sarcastic rebellious obedient protective noble dishonest treacherous
  precise punctual forgetful absent-minded sensitive fussy bossy fair
`);

/** "was", "seemed": between a name and an adjective, these make the adjective the name's. */
const LINKING = wordSet('was is were are seemed seems looked looks felt became becomes grew remained stayed sounded appeared been being always');
/** A preposition or a clause word starts a new phrase: an adjective after it belongs to something else. */
const PHRASE_BREAK = wordSet(`
  in on at from to with of by into under over across through behind beside near about after before but while when
  because though although until whereas than the his her their its my your our
`);

/** Traits whose adverb says as much ("smiled kindly"); "brightly" or "quietly" describe a moment, not a person. */
const ADVERB_TRAITS = wordSet(`
  brave bold kind gentle patient impatient curious cruel clever shy stubborn cheerful gruff stern nervous anxious cautious
  careful proud eager playful mischievous calm fierce honest generous greedy jealous rude polite tender fearless reckless
  sly timid
`);
const ADVERBS = new Map<string, string>();
for (const trait of ADVERB_TRAITS) {
  const adverb = trait.endsWith('le')
    ? `${trait.slice(0, -1)}y`
    : trait.endsWith('y') && trait.length > 3
      ? `${trait.slice(0, -1)}ily`
      : trait.endsWith('ic')
        ? `${trait}ally`
        : `${trait}ly`;
  ADVERBS.set(adverb, trait);
}

const REACH = 6;
/** "Mr. Garcia, the science teacher, was…": an appositive to step over. */
const APPOSITIVE_OPENERS = wordSet('the a an his her their our my');

/** Up to `max` traits per character, most often tied to it first. */
export function findTraits(doc: Doc, characters: FoundCharacter[], max: number): string[][] {
  const tallies = characters.map(() => new Map<string, number>());
  const bySentence = new Map<number, { who: number; first: number; last: number }[]>();
  characters.forEach((c, who) => {
    for (const m of c.mentions) {
      const here = bySentence.get(m.sentence) ?? [];
      here.push({ who, first: m.first, last: m.last });
      bySentence.set(m.sentence, here);
    }
  });
  const add = (who: number, trait: string) => tallies[who]!.set(trait, (tallies[who]!.get(trait) ?? 0) + 1);

  for (const sentence of doc.sentences) {
    const mentions = bySentence.get(sentence.index);
    if (mentions) {
      mentions.sort((a, b) => a.first - b.first);
      mentions.forEach((m, i) => {
        const limit = Math.min(mentions[i + 1]?.first ?? sentence.last, sentence.last);
        for (const trait of traitsAfter(doc, m.last, limit)) add(m.who, trait);
        for (const trait of traitsBefore(doc, m.first, Math.max(sentence.first, mentions[i - 1]?.last ?? 0))) add(m.who, trait);
      });
      continue;
    }
    // "She was curious about everything." after a sentence about one character only.
    const opener = doc.tokens[sentence.first]!;
    const previous = bySentence.get(sentence.index - 1);
    if ((opener.lower === 'she' || opener.lower === 'he') && previous && new Set(previous.map((m) => m.who)).size === 1) {
      for (const trait of traitsAfter(doc, sentence.first + 1, sentence.last)) add(previous[0]!.who, trait);
    }
  }
  return tallies.map((tally) =>
    [...tally]
      .sort((a, b) => b[1] - a[1])
      .slice(0, max)
      .map(([trait]) => trait),
  );
}

/**
 * Adjectives within reach after a name once "was" or an appositive comma links them ("Mira was
 * curious", "Finch, loyal as ever"), past an appositive noun phrase ("Mr. Garcia, the science
 * teacher, was strict"); adverbs of manner right after it without ("Tom smiled kindly").
 */
function traitsAfter(doc: Doc, from: number, limit: number): string[] {
  const { tokens } = doc;
  const commaBefore = (k: number) => tokens[k]!.clauseStart && /,/.test(doc.text.slice(tokens[k - 1]!.end, tokens[k]!.start));
  let start = from;
  let linked = from < limit && commaBefore(from);
  if (linked && APPOSITIVE_OPENERS.has(tokens[from]!.lower)) {
    let close = from + 1;
    while (close < limit && close < from + REACH && !commaBefore(close)) close++;
    if (close < limit && commaBefore(close)) [start, linked] = [close, false];
  }
  const found: string[] = [];
  const end = Math.min(limit, start + REACH);
  for (let k = start; k < end; k++) {
    const t = tokens[k]!;
    if (k > start && t.clauseStart && !/^[,\s]+$/.test(doc.text.slice(tokens[k - 1]!.end, t.start))) break;
    if (LINKING.has(t.lower)) linked = true;
    else if (PHRASE_BREAK.has(t.lower)) break;
    const negated = [1, 2].some((back) => k - back >= from - 1 && k - back >= 0 && isNegator(tokens[k - back]!.lower));
    if (negated) continue;
    if (linked && TRAIT_WORDS.has(t.lower)) found.push(t.lower);
    else if (k - start < 3 && ADVERBS.has(t.lower)) found.push(ADVERBS.get(t.lower)!);
  }
  return found;
}

/** "brave Mira", "the clever young Kade": adjectives straight before the name. */
function traitsBefore(doc: Doc, name: number, floor: number): string[] {
  const found: string[] = [];
  for (let k = name - 1; k >= floor && k >= name - 2; k--) {
    const t = doc.tokens[k]!;
    if (!TRAIT_WORDS.has(t.lower) || (k > 0 && isNegator(doc.tokens[k - 1]!.lower))) break;
    if (t.capitalised && !t.initial) break;
    found.push(t.lower);
    if (doc.tokens[k]!.clauseStart) break;
  }
  return found;
}
