/**
 * Named characters from capitalisation. A capitalised word mid-sentence is a proper noun; at the
 * start of a sentence or quotation everything is capitalised, so a word there counts only when
 * the same name is seen elsewhere, or it is titled, speaks ("Kade said"), or acts ("Mira walked")
 * and never appears in lowercase. Partial names join the one full name they belong to, and proper
 * nouns that behave like places or things ("in Ashford", "the Meridian") are dropped. Names need
 * two mentions.
 */
import type { Doc, Sentence, Token } from './text.js';
import {
  ARTICLES, LOCATIVES, NAME_LIKE_STOPWORDS, NAME_PARTICLES, NON_NAMES, PERSON_VERBS, PLACE_WORDS, SPEECH_VERBS, STANDALONE_TITLES, STOPWORDS, TITLES,
  WEAK_LOCATIVES,
} from './words.js';

/** Tokens [first, last) of Doc.tokens naming a character once. */
export interface Mention {
  first: number;
  last: number;
  sentence: number;
}

export interface FoundCharacter {
  name: string;
  mentions: Mention[];
}

interface RawMention extends Mention {
  key: string;
  title: string | null;
  core: string[];
  surface: string;
  initial: boolean;
  speech: boolean;
  /** Followed by what people do ("Mira walked"). */
  acts: boolean;
}

interface Group {
  key: string;
  title: string | null;
  core: string[];
  mentions: RawMention[];
  first: number;
  parent: Group | null;
  /** A lone title several full names share ("Captain" with two captains): nobody in particular. */
  ambiguous: boolean;
}

const MAX_NAME_WORDS = 5;
/** Before a name these introduce a thing as often as a speaker ("a village called Ashford"). */
const NOT_SPEECH_BEFORE = new Set(['called', 'told', 'added', 'offered', 'noted', 'observed', 'corrected', 'warned', 'wondered']);

export function findCharacters(doc: Doc, limit: number): FoundCharacter[] {
  const raw: RawMention[] = [];
  for (const sentence of doc.sentences) if (!sentence.heading) collectMentions(doc, sentence, raw);

  // Mid-sentence capitals, titled names, speakers and multi-word names are names wherever they
  // stand, and so is "Mira walked." when no "mira" appears in lowercase anywhere; any other
  // capitalised word opening a sentence is a name only if it is seen as one elsewhere.
  const lowercaseCounts = new Map<string, number>();
  for (const t of doc.tokens) if (!t.capitalised) lowercaseCounts.set(t.lower, (lowercaseCounts.get(t.lower) ?? 0) + 1);
  const sure = (m: RawMention) =>
    !m.initial || (m.title !== null && m.core.length > 0) || m.speech || m.core.length > 1 || (m.acts && m.core.every((w) => !lowercaseCounts.has(w)));
  const knownKeys = new Set<string>();
  const knownCore = new Set<string>();
  for (const m of raw) {
    if (!sure(m)) continue;
    knownKeys.add(m.key);
    for (const word of m.core) knownCore.add(word);
  }
  const confirmed = (m: RawMention) => sure(m) || knownKeys.has(m.key) || m.core.some((w) => knownCore.has(w));

  const groups = new Map<string, Group>();
  for (const m of raw) {
    if (!confirmed(m)) continue;
    const group = groups.get(m.key) ?? { key: m.key, title: m.title, core: m.core, mentions: [], first: m.first, parent: null, ambiguous: false };
    group.mentions.push(m);
    groups.set(m.key, group);
  }
  mergeGroups([...groups.values()]);

  const roots = new Map<Group, RawMention[]>();
  for (const group of groups.values()) {
    const root = rootOf(group);
    const mentions = roots.get(root) ?? [];
    for (const m of group.mentions) mentions.push(m);
    roots.set(root, mentions);
  }
  const found: (FoundCharacter & { first: number })[] = [];
  for (const [root, mentions] of roots) {
    if (mentions.length < 2 || root.ambiguous || !looksLikePerson(doc, root, mentions, lowercaseCounts)) continue;
    mentions.sort((a, b) => a.first - b.first);
    found.push({ name: displayName(doc, root), mentions: mentions.map(({ first, last, sentence }) => ({ first, last, sentence })), first: mentions[0]!.first });
  }
  found.sort((a, b) => b.mentions.length - a.mentions.length || a.first - b.first);
  return found.slice(0, limit).map(({ name, mentions }) => ({ name, mentions }));
}

const titleOf = (t: Token) => TITLES.get(t.lower);

function isNameWord(t: Token): boolean {
  if (!t.capitalised) return false;
  if (titleOf(t)) return true;
  return !NON_NAMES.has(t.lower);
}

/** "told Will", "Will nodded"; not "Will you…" or "May I…". */
function isNameLikeStopword(t: Token, next: Token | undefined): boolean {
  return t.capitalised && NAME_LIKE_STOPWORDS.has(t.lower) && (!t.initial || (!!next && next.joined && !STOPWORDS.has(next.lower)));
}

/** Runs of capitalised words joined by spaces, cut at words that cannot be part of a name. */
function collectMentions(doc: Doc, sentence: Sentence, out: RawMention[]): void {
  const { tokens } = doc;
  let i = sentence.first;
  while (i < sentence.last) {
    if (!tokens[i]!.capitalised) {
      i++;
      continue;
    }
    let end = i + 1;
    let j = i + 1;
    while (!tokens[end - 1]!.possessive && j < sentence.last && j - i < MAX_NAME_WORDS && tokens[j]!.joined) {
      const t = tokens[j]!;
      if (t.capitalised) end = j = j + 1;
      else if (NAME_PARTICLES.has(t.lower)) {
        let p = j;
        while (p < sentence.last && p - j < 2 && NAME_PARTICLES.has(tokens[p]!.lower) && tokens[p]!.joined) p++;
        if (p < sentence.last && tokens[p]!.capitalised && tokens[p]!.joined) j = p;
        else break;
      } else break;
    }
    let segmentStart = -1;
    for (let k = i; k <= end; k++) {
      const nameWord = k < end && (isNameWord(tokens[k]!) || isNameLikeStopword(tokens[k]!, tokens[k + 1]) || (segmentStart >= 0 && NAME_PARTICLES.has(tokens[k]!.lower)));
      if (nameWord && segmentStart < 0) segmentStart = k;
      if (!nameWord && segmentStart >= 0) {
        emit(doc, sentence, segmentStart, k, out);
        segmentStart = -1;
      }
    }
    i = end;
  }
}

function emit(doc: Doc, sentence: Sentence, first: number, last: number, out: RawMention[]): void {
  const { tokens } = doc;
  while (last > first && NAME_PARTICLES.has(tokens[last - 1]!.lower) && !tokens[last - 1]!.capitalised) last--;
  const head = tokens[first]!;
  const titles: string[] = [];
  let k = first;
  while (k < last && titleOf(tokens[k]!) && k < last - 1) titles.push(titleOf(tokens[k++]!)!);
  // A lone title ("the Captain") stands for someone only if the title can.
  if (k === last - 1 && titleOf(tokens[k]!) && !titles.length) {
    if (!STANDALONE_TITLES.has(titleOf(tokens[k]!)!)) return;
    titles.push(titleOf(tokens[k]!)!);
    k = last;
  }
  const core = tokens.slice(k, last).map((t) => t.lower);
  const title = titles.length ? titles.join(' ') : null;
  const before = first > sentence.first ? tokens[first - 1] : undefined;
  const after = last < sentence.last ? tokens[last] : undefined;
  out.push({
    first,
    last,
    sentence: sentence.index,
    key: `${title ?? ''}|${core.join(' ')}`,
    title,
    core,
    surface: doc.text.slice(head.start, tokens[last - 1]!.start + tokens[last - 1]!.text.length).replace(/\s+/g, ' '),
    initial: head.initial,
    speech: (!!after && SPEECH_VERBS.has(after.lower) && !after.clauseStart) || (!!before && SPEECH_VERBS.has(before.lower) && !NOT_SPEECH_BEFORE.has(before.lower)),
    acts: !!after && !after.clauseStart && PERSON_VERBS.has(after.lower),
  });
}

const isSubset = (small: string[], big: string[]) => small.every((w) => big.includes(w));

/** A shorter form of one name is that name: Reyes → Captain Reyes, Tom → Old Tom, the Captain → Captain Reyes. */
function covers(big: Group, small: Group): boolean {
  if (big === small || (small.title !== null && small.title !== big.title && !big.title?.endsWith(` ${small.title}`))) return false;
  if (!isSubset(small.core, big.core)) return false;
  if (!small.core.length) return big.core.length > 0;
  if (small.core.length === big.core.length && !(small.title === null && big.title !== null)) return false;
  // A full name seen once, after the short one, is more likely two names side by side ("told Mira Tom was late").
  return big.mentions.length > 1 || big.first <= small.first;
}

const rootOf = (group: Group): Group => (group.parent ? rootOf(group.parent) : group);

/** Each group joins the one full name covering it, when exactly one does; ambiguous short forms stay apart. */
function mergeGroups(groups: Group[]): void {
  const specificity = (g: Group) => g.core.length * 2 + (g.title ? 1 : 0);
  const ordered = [...groups].sort((a, b) => specificity(b) - specificity(a) || a.first - b.first);
  // A covering name shares the short one's first word, or its title: only those are compared.
  const sharing = new Map<string, Group[]>();
  const index = (key: string, g: Group) => {
    const list = sharing.get(key);
    if (list) list.push(g);
    else sharing.set(key, [g]);
  };
  const titleKey = (title: string) => `title:${title.slice(title.lastIndexOf(' ') + 1)}`;
  for (const g of ordered) {
    for (const word of new Set(g.core)) index(word, g);
    if (g.title) index(titleKey(g.title), g);
  }
  for (const small of ordered) {
    const pool = sharing.get(small.core.length ? small.core[0]! : titleKey(small.title!)) ?? [];
    const targets = new Set<Group>();
    for (const big of pool) if (specificity(big) > specificity(small) && covers(big, small)) targets.add(rootOf(big));
    if (targets.size === 1) small.parent = [...targets][0]!;
    else if (targets.size > 1 && !small.core.length) small.ambiguous = true;
  }
}

function looksLikePerson(doc: Doc, root: Group, mentions: RawMention[], lowercaseCounts: Map<string, number>): boolean {
  const { tokens } = doc;
  if (root.core.length > 1 && root.core.some((w) => PLACE_WORDS.has(w))) return false;
  let article = 0;
  let locative = 0;
  let person = 0;
  for (const m of mentions) {
    const floor = doc.sentences[m.sentence]!.first;
    const before = m.first > floor ? tokens[m.first - 1]! : undefined;
    // "in the Hollow": look past the article for the preposition.
    const preposition = before && ARTICLES.has(before.lower) && m.first - 2 >= floor ? tokens[m.first - 2]! : before;
    if (before && !before.capitalised && (ARTICLES.has(before.lower) || PLACE_WORDS.has(before.lower))) article++;
    if (preposition && LOCATIVES.has(preposition.lower)) locative++;
    else if (preposition && WEAK_LOCATIVES.has(preposition.lower)) locative += 0.5;
    // "St. Louis", "St. Mary's" are places as often as saints.
    if (m.speech || m.acts || (m.title && m.title !== 'saint')) person++;
  }
  const n = mentions.length;
  if (root.core.length && article * 2 >= n && !person) return false;
  if (root.core.length && article * 4 > n * 3) return false;
  if (locative * 3 >= n && person * 3 < n) return false;
  if (root.core.length === 1 && !root.title && !person) {
    // "Dragon" in a story that mostly says "dragon" is emphasis, not a name.
    const lower = lowercaseCounts.get(root.core[0]!) ?? 0;
    const allCaps = mentions.every((m) => tokens[m.first]!.allCaps);
    if (lower >= n || (allCaps && lower > 0)) return false;
  }
  return true;
}

/** The full name as the story writes it most often; a lone title keeps its article ("the Captain"). */
function displayName(doc: Doc, root: Group): string {
  const counts = new Map<string, number>();
  for (const m of root.mentions) counts.set(m.surface, (counts.get(m.surface) ?? 0) + 1);
  let best = root.mentions[0]!.surface;
  for (const [surface, count] of counts) if (count > counts.get(best)!) best = surface;
  if (root.core.length) return best;
  const withArticle = root.mentions.filter((m) => m.first > doc.sentences[m.sentence]!.first && doc.tokens[m.first - 1]!.lower === 'the');
  return withArticle.length * 2 >= root.mentions.length ? `the ${best}` : best;
}
