/**
 * The offline adapter of the story-analysis port: heuristics and English word lists, no model,
 * no network, no randomness, no clock. Same text, same result; the work is linear in the text
 * (a 200,000-character story takes 100–300 ms). It is there so every flow built on an analysis
 * (roleplay characters, narration, video prompts) works without an API key, and it says so in
 * `notes`. How each part is found: local/characters.ts, traits.ts, describe.ts, emotions.ts,
 * genre.ts, summary.ts.
 *
 * Other languages: sentences, capitalised names and the summary still work for any language that
 * capitalises names (German, which capitalises every noun, yields more false names); emotions and
 * genre rest on English lists, so they come back empty or as the default, and a note says so.
 */
import { AnalysisFailed, countWords, type AnalysisResult, type StoryAnalyser, type StoryText } from './analyser.js';
import { findCharacters } from './local/characters.js';
import { describeCharacter } from './local/describe.js';
import { findEmotions } from './local/emotions.js';
import { findGenre } from './local/genre.js';
import { summarise } from './local/summary.js';
import { readStory, type Doc } from './local/text.js';
import { findTraits } from './local/traits.js';
import { STOPWORDS } from './local/words.js';

export const LOCAL_MODEL = 'storyloom-local-1';

/** Twice the longest story the subgraph accepts (story.rules MAX_CONTENT_LENGTH): a bound on work, not a limit users meet. */
export const LOCAL_MAX_CHARS = 400_000;
const MAX_CHARACTERS = 12;
const MAX_TRAITS = 5;
const MAX_SUMMARY_CHARS = 600;

export class LocalAnalyser implements StoryAnalyser {
  readonly name = 'local';
  readonly model = LOCAL_MODEL;

  async analyse(story: StoryText, options: { signal?: AbortSignal } = {}): Promise<AnalysisResult> {
    const { signal } = options;
    signal?.throwIfAborted();
    if (countWords(story.content) === 0) throw new AnalysisFailed('EMPTY_STORY', 'The story has no text to analyse yet.');
    const notes = ['local analysis: heuristic, English lexicons'];

    let content = story.content;
    if (content.length > LOCAL_MAX_CHARS) {
      const cut = content.lastIndexOf(' ', LOCAL_MAX_CHARS);
      content = content.slice(0, cut > LOCAL_MAX_CHARS / 2 ? cut : LOCAL_MAX_CHARS);
      notes.push(`analysed the first ${content.length} characters`);
    }

    // The work is synchronous; giving the event loop a turn between steps keeps the subgraph answering meanwhile.
    const doc = readStory(content);
    await breathe(signal);
    const found = findCharacters(doc, MAX_CHARACTERS);
    const traits = findTraits(doc, found, MAX_TRAITS);
    const characters = found.map((c, i) => ({ name: c.name, description: describeCharacter(doc, c), traits: traits[i]! }));
    await breathe(signal);
    const emotions = findEmotions(doc);
    const names = new Set<number>();
    for (const c of found) for (const m of c.mentions) for (let k = m.first; k < m.last; k++) names.add(k);
    const genre = findGenre(doc, story.title ?? '', names, emotions);
    await breathe(signal);
    const summary = summarise(doc, found, MAX_SUMMARY_CHARS);

    if (!looksEnglish(doc, story.language)) {
      notes.push('the text does not look English: emotions and genre rely on English word lists and may be missing or a default');
    }
    return { summary, genre, characters, emotions, provider: this.name, model: this.model, notes };
  }
}

async function breathe(signal: AbortSignal | undefined): Promise<void> {
  await new Promise<void>((resolve) => setImmediate(resolve));
  signal?.throwIfAborted();
}

/** The author's language when set; otherwise English prose is about half function words, other languages almost none of ours. */
function looksEnglish(doc: Doc, language: string | null | undefined): boolean {
  if (language) return /^en(?:-|$)/i.test(language);
  const sample = doc.tokens.slice(0, 5000);
  return sample.filter((t) => STOPWORDS.has(t.lower)).length >= sample.length * 0.2;
}
