import type { Config } from '../../../platform/config.js';
import type { StoryAnalyser } from './analyser.js';
import { LocalAnalyser } from './local.js';
import { OpenAIAnalyser } from './openai.js';

/** The analyser the settings choose (STORY_ANALYSER); `local` unless told otherwise. */
export function analyserFor(config: Config): StoryAnalyser {
  if (config.STORY_ANALYSER === 'local') return new LocalAnalyser();
  return new OpenAIAnalyser({
    // loadConfig refuses STORY_ANALYSER=openai without a key.
    apiKey: config.OPENAI_API_KEY!,
    baseURL: config.OPENAI_BASE_URL,
    model: config.OPENAI_ANALYSIS_MODEL,
    timeoutMs: config.OPENAI_TIMEOUT_MS,
    maxRetries: config.OPENAI_MAX_RETRIES,
    maxInputChars: config.OPENAI_MAX_INPUT_CHARS,
    maxChunks: config.OPENAI_MAX_CHUNKS,
  });
}
