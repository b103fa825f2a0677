/**
 * The story-analysis port: one interface, one adapter per file (`local.ts`, `openai.ts`). The
 * worker (analysis.worker.ts) calls `analyse` outside any database transaction and stores what
 * comes back; an adapter never touches the database.
 */

/** The genres analysis may name; the OpenAI adapter constrains the model to these. */
export const GENRES = [
  'fantasy',
  'science-fiction',
  'mystery',
  'thriller',
  'horror',
  'romance',
  'adventure',
  'comedy',
  'drama',
  'fairy-tale',
  'historical',
  'slice-of-life',
] as const;
export type Genre = (typeof GENRES)[number];

/** Plutchik's eight basic emotions: the labels analysis may report. */
export const EMOTIONS = ['joy', 'trust', 'fear', 'surprise', 'sadness', 'disgust', 'anger', 'anticipation'] as const;
export type EmotionLabel = (typeof EMOTIONS)[number];

export interface StoryText {
  title: string;
  content: string;
  /** BCP 47, when the author set one (customization.language). */
  language?: string | null;
}

export interface AnalysedCharacter {
  /** As the story writes it ("Mira", "Captain Reyes"). */
  name: string;
  /** One or two sentences about who the character is, drawn from the story. */
  description: string;
  /** Short lowercase adjectives ("brave", "curious"); may be empty. */
  traits: string[];
}

export interface AnalysedEmotion {
  label: EmotionLabel;
  /** 0..1: how strongly the story carries it. */
  intensity: number;
}

export interface AnalysisResult {
  summary: string;
  genre: Genre;
  /** Most prominent first; at most 12. */
  characters: AnalysedCharacter[];
  /** Strongest first; only those present (intensity > 0). */
  emotions: AnalysedEmotion[];
  /** Which adapter answered ("local", "openai"): shown to users, so a local analysis says so. */
  provider: string;
  /** The model or algorithm version ("storyloom-local-1", "gpt-4o-mini"). */
  model: string;
  /** How the text was fitted to the model, when it was: "analysed in 3 chunks", "truncated to 480000 characters". */
  notes: string[];
}

/** Why an analysis failed, as stored and announced (story.analysis.failed). */
export type AnalysisFailureReason = 'REFUSED' | 'TIMEOUT' | 'PROVIDER_ERROR' | 'INVALID_RESPONSE' | 'EMPTY_STORY' | 'CANCELLED';

/** An analysis that cannot succeed as asked; `message` is safe to show the author. */
export class AnalysisFailed extends Error {
  constructor(
    readonly reason: AnalysisFailureReason,
    message: string,
  ) {
    super(message);
    this.name = 'AnalysisFailed';
  }
}

export interface StoryAnalyser {
  /** "local", "openai". */
  readonly name: string;
  /**
   * Analyses one story. Throws AnalysisFailed for outcomes the author should see (a refusal,
   * a timeout after the configured retries); anything else is treated as PROVIDER_ERROR.
   * `signal` aborts the work when the subgraph stops.
   */
  analyse(story: StoryText, options?: { signal?: AbortSignal }): Promise<AnalysisResult>;
}

/** Words per minute of an adult silent reader (Brysbaert 2019 puts fiction at about 260; 230 is conservative). */
export const READING_WORDS_PER_MINUTE = 230;

/**
 * Words as readers count them: runs of letters or digits, apostrophes and hyphens inside a word
 * kept. Combining marks belong to their word (Devanagari vowel signs, a decomposed "é"); scripts
 * written without spaces (Chinese, Thai) count a run as one word.
 */
export function countWords(text: string): number {
  return text.match(/[\p{L}\p{M}\p{N}]+(?:['’-][\p{L}\p{M}\p{N}]+)*/gu)?.length ?? 0;
}

/** Whole minutes, at least 1 for any text with a word: computed here, never asked of a model. */
export function readingTimeMinutes(wordCount: number): number {
  return wordCount === 0 ? 0 : Math.max(1, Math.round(wordCount / READING_WORDS_PER_MINUTE));
}
