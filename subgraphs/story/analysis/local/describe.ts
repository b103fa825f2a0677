/**
 * A character's description: the story's own sentences that say who the character is. Narration
 * that introduces ("Mira was eleven", "Kade, the ship's android,") beats dialogue and action;
 * the first mention gets a head start because stories introduce people when they arrive.
 */
import type { FoundCharacter } from './characters.js';
import { sentenceText, type Doc, type Token } from './text.js';
import { TRAIT_WORDS } from './traits.js';
import { wordSet } from './words.js';

const MAX_CHARS = 300;

/** Words for who someone is: a sentence with one near the name is likely an introduction. */
const ROLE_NOUNS = wordSet(`
  girl boy man woman child kid baby teenager daughter son father mother grandfather grandmother grandson granddaughter
  brother sister wife husband widow widower uncle aunt cousin friend neighbour neighbor stranger orphan twin
  captain detective inspector officer constable soldier knight king queen prince princess lord lady servant butler
  maid cook gardener farmer baker blacksmith fisherman merchant shopkeeper teacher student pupil doctor nurse engineer
  pilot scientist android robot machine dragon wizard witch sorcerer mage elf dwarf giant ghost creature beast
  thief suspect victim witness keeper guard hunter sailor pirate priest monk nun artist painter writer musician
  years age old young eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty
  fifty sixty seventy eighty ninety hundred
`);
const isRole = (t: Token) => ROLE_NOUNS.has(t.lower) && !t.capitalised;
const INTRODUCING = wordSet('was is had has lived seemed became');
const APPOSITIVE = wordSet('a an the his her their who whose');

export function describeCharacter(doc: Doc, character: FoundCharacter): string {
  const scored = new Map<number, number>();
  character.mentions.forEach((m, n) => {
    if (scored.has(m.sentence)) return;
    const sentence = doc.sentences[m.sentence]!;
    const { tokens } = doc;
    const words = sentence.last - sentence.first;
    let score = n === 0 ? 2 : n === 1 ? 1 : 0;
    const after = tokens[m.last];
    const describing = (k: number) => {
      const t = tokens[k];
      return !!t && t.sentence === m.sentence && (/^(a|an)$/.test(t.lower) || isRole(t) || TRAIT_WORDS.has(t.lower) || /^\d+$/.test(t.lower));
    };
    if (after && after.sentence === m.sentence) {
      // "Mira was eleven", "Vask was ancient": "was" followed by what someone is, not "was gone".
      if (INTRODUCING.has(after.lower) && !after.clauseStart) score += describing(m.last + 1) || describing(m.last + 2) ? 3 : 1;
      else if (after.clauseStart && APPOSITIVE.has(after.lower)) score += 3;
    }
    let roles = 0;
    let traits = 0;
    for (let k = sentence.first; k < sentence.last; k++) {
      if (isRole(tokens[k]!)) roles++;
      if (TRAIT_WORDS.has(tokens[k]!.lower)) traits++;
    }
    score += Math.min(roles, 2) * 1.5 + Math.min(traits, 2);
    score -= sentence.quoted * 4;
    if (words < 5) score -= 1.5;
    if (words > 45) score -= 1.5;
    scored.set(m.sentence, score);
  });
  const ranked = [...scored].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  const [best] = ranked[0]!;
  const chosen = [best];
  const bestText = sentenceText(doc, doc.sentences[best]!);
  // A second sentence only when it adds something and both fit.
  const runnerUp = ranked.slice(1).find(([index, score]) => score >= 3 && doc.sentences[index]!.quoted < 0.3 && bestText.length + 1 + sentenceText(doc, doc.sentences[index]!).length <= MAX_CHARS);
  const next = doc.sentences[best + 1];
  const continues = next && next.paragraph === doc.sentences[best]!.paragraph && /^(she|he|they|it)$/.test(doc.tokens[next.first]!.lower) && next.quoted <= 0.5;
  if (runnerUp) chosen.push(runnerUp[0]);
  else if (continues && bestText.length + 1 + sentenceText(doc, next).length <= MAX_CHARS) chosen.push(best + 1);
  chosen.sort((a, b) => a - b);
  return clip(chosen.map((i) => sentenceText(doc, doc.sentences[i]!)).join(' '), MAX_CHARS);
}

/** Whole words, with an ellipsis when cut. */
export function clip(text: string, max: number): string {
  if (text.length <= max) return text;
  const cut = text.slice(0, max - 1);
  const space = cut.lastIndexOf(' ');
  return `${(space > max / 2 ? cut.slice(0, space) : cut).replace(/[\s,;:—–-]+$/, '')}…`;
}
