/**
 * The ElevenLabs adapter of the speech port: `POST /v1/text-to-speech/{voice_id}` through the
 * official SDK, for cloned voices and for any ElevenLabs voice id configured as a stock voice.
 * `textToSpeech.convert` resolves to a web ReadableStream of MP3 bytes, read here within the
 * attempt's deadline; waiting and retrying are elevenlabs-client.ts's.
 */
import type { ElevenLabs } from '@elevenlabs/elevenlabs-js';
import { MalformedAudio, readMp3 } from './audio.js';
import { ElevenLabsCaller, type ElevenLabsConnection } from './elevenlabs-client.js';
import { checkSpeakable, ProviderFailed, type NarrationVoice, type SpeechSynthesizer, type SynthesizedAudio } from './speech.js';

type Mp3OutputFormat = Extract<ElevenLabs.TextToSpeechConvertRequestOutputFormat, `mp3_${string}`>;

export interface ElevenLabsSpeechOptions extends ElevenLabsConnection {
  /** e.g. "eleven_multilingual_v2"; the caller chooses the default. */
  modelId: string;
  /** An MP3 format, "mp3_44100_128" when absent (192 kbps needs a Creator plan or above). */
  outputFormat?: Mp3OutputFormat;
  /** ElevenLabs voice ids offered as stock voices (premade or library voices); none when absent. */
  stockVoices?: readonly string[];
  /** Overrides the per-model limit below. */
  maxChars?: number;
}

/**
 * Characters one request takes, by model (help.elevenlabs.io, "What's the maximum amount of
 * characters"; eleven_v3 from the models page). An unknown model gets the smallest.
 */
const MODEL_MAX_CHARS: Record<string, number> = {
  eleven_v3: 5_000,
  eleven_multilingual_v2: 10_000,
  eleven_multilingual_v1: 10_000,
  eleven_monolingual_v1: 10_000,
  eleven_english_v2: 10_000,
  eleven_flash_v2: 30_000,
  eleven_turbo_v2: 30_000,
  eleven_flash_v2_5: 40_000,
  eleven_turbo_v2_5: 40_000,
};
export const ELEVENLABS_DEFAULT_MAX_CHARS = 5_000;

export class ElevenLabsSpeechSynthesizer implements SpeechSynthesizer {
  readonly name = 'elevenlabs';
  readonly maxChars: number;
  readonly stockVoices: readonly string[];
  readonly #caller: ElevenLabsCaller;
  readonly #modelId: string;
  readonly #outputFormat: Mp3OutputFormat;

  constructor(options: ElevenLabsSpeechOptions) {
    this.#caller = new ElevenLabsCaller('ElevenLabsSpeechSynthesizer', options);
    if (!options.modelId) throw new RangeError('ElevenLabsSpeechSynthesizer: modelId is required');
    this.#outputFormat = options.outputFormat ?? 'mp3_44100_128';
    if (!/^mp3_\d+_\d+$/.test(this.#outputFormat)) throw new RangeError(`ElevenLabsSpeechSynthesizer: outputFormat must be an MP3 format, got ${this.#outputFormat}`);
    this.#modelId = options.modelId;
    this.maxChars = options.maxChars ?? MODEL_MAX_CHARS[options.modelId] ?? ELEVENLABS_DEFAULT_MAX_CHARS;
    if (!Number.isInteger(this.maxChars) || this.maxChars < 1) throw new RangeError('ElevenLabsSpeechSynthesizer: maxChars must be a positive integer');
    this.stockVoices = [...(options.stockVoices ?? [])];
  }

  async synthesize(text: string, voice: NarrationVoice, options: { signal?: AbortSignal } = {}): Promise<SynthesizedAudio> {
    const { signal } = options;
    signal?.throwIfAborted();
    checkSpeakable('ElevenLabsSpeechSynthesizer', text, this.maxChars);
    const voiceId = voice.kind === 'CLONED' ? voice.providerVoiceId : voice.stockVoice;
    if (!voiceId.trim()) throw new RangeError('ElevenLabsSpeechSynthesizer: the voice id is empty');
    const { bytes, contentType } = await this.#caller.call(
      async (request) => {
        const { data, rawResponse } = await this.#caller.client.textToSpeech
          .convert(voiceId, { text, modelId: this.#modelId, outputFormat: this.#outputFormat }, request)
          .withRawResponse();
        return { bytes: await readAll(data), contentType: rawResponse.headers.get('content-type') ?? '' };
      },
      { signal, idempotent: true },
    );
    if (bytes.length === 0) throw new ProviderFailed('INVALID_RESPONSE', 'ElevenLabs answered with no audio.');
    if (/json|text|html/i.test(contentType)) throw new ProviderFailed('INVALID_RESPONSE', `ElevenLabs answered ${contentType.split(';')[0]} instead of MP3 audio.`);
    try {
      return { audio: bytes, format: 'mp3', durationMs: readMp3(bytes).durationMs };
    } catch (error) {
      if (error instanceof MalformedAudio) throw new ProviderFailed('INVALID_RESPONSE', `ElevenLabs answered with audio that is not valid MP3: ${error.message}.`);
      throw error;
    }
  }
}

/** The whole stream; a deadline that aborts the request errors the stream, and so this read. */
async function readAll(stream: ReadableStream<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}
