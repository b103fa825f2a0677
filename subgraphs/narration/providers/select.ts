import type { Config } from '../../../platform/config.js';
import { ElevenLabsVoiceCloner } from './elevenlabs-cloner.js';
import { ElevenLabsSpeechSynthesizer } from './elevenlabs-speech.js';
import { LocalVoiceCloner } from './local-cloner.js';
import { LocalSpeechSynthesizer } from './local-speech.js';
import { OpenAISpeechSynthesizer } from './openai-speech.js';
import type { SpeechSynthesizer, VoiceCloner } from './speech.js';

/** The providers the settings choose; `local` (offline) unless told otherwise. */
export function narrationProvidersFor(config: Config): { stockSpeech: SpeechSynthesizer; clonedSpeech: SpeechSynthesizer; cloner: VoiceCloner } {
  const local = new LocalSpeechSynthesizer();
  const stockSpeech =
    config.NARRATION_STOCK_TTS === 'openai'
      ? new OpenAISpeechSynthesizer({
          // loadConfig refuses NARRATION_STOCK_TTS=openai without a key.
          apiKey: config.OPENAI_API_KEY!,
          baseURL: config.OPENAI_BASE_URL,
          model: config.OPENAI_TTS_MODEL,
          timeoutMs: config.OPENAI_TIMEOUT_MS,
          maxRetries: config.OPENAI_MAX_RETRIES,
        })
      : local;
  if (config.NARRATION_VOICE_PROVIDER === 'local') return { stockSpeech, clonedSpeech: local, cloner: new LocalVoiceCloner() };
  const connection = { apiKey: config.ELEVENLABS_API_KEY!, baseUrl: config.ELEVENLABS_BASE_URL, timeoutMs: config.ELEVENLABS_TIMEOUT_MS, maxRetries: config.ELEVENLABS_MAX_RETRIES };
  return {
    stockSpeech,
    clonedSpeech: new ElevenLabsSpeechSynthesizer({ ...connection, modelId: config.ELEVENLABS_MODEL_ID }),
    cloner: new ElevenLabsVoiceCloner(connection),
  };
}
