/**
 * The narration ports: speech synthesis and voice cloning, one interface each, one adapter per
 * file (`local-speech.ts`, `openai-speech.ts`, `elevenlabs-speech.ts`; `local-cloner.ts`,
 * `elevenlabs-cloner.ts`). Adapters take a text no longer than their `maxChars` and return one
 * audio file; splitting a story and joining the parts is the caller's (audio.ts has both), so
 * every adapter stays one request long. An adapter never touches the database.
 */

export type AudioFormat = 'wav' | 'mp3';

/** A voice as narration stores it: one of the synthesizer's stock voices, or a voice cloned from an author's samples. */
export type NarrationVoice = { kind: 'STOCK'; stockVoice: string } | { kind: 'CLONED'; providerVoiceId: string };

export interface SynthesizedAudio {
  /** A whole file: a WAV with its header, or MP3 frames (perhaps behind an ID3 tag). */
  audio: Buffer;
  format: AudioFormat;
  /** Null when the audio could not be measured (an MP3 whose frames could not be walked). */
  durationMs: number | null;
}

export interface SpeechSynthesizer {
  /** "local", "openai", "elevenlabs". */
  readonly name: string;
  /** The longest text, in UTF-16 units, one `synthesize` call takes (OpenAI TTS: 4096). */
  readonly maxChars: number;
  /** Voice names a STOCK voice may use; empty when the synthesizer only speaks cloned voices. */
  readonly stockVoices: readonly string[];
  /**
   * Speaks one part of a story. Throws RangeError for a text that is empty or longer than
   * `maxChars` (split it first: audio.ts `splitForSpeech`), ProviderFailed for what the author
   * should be told; `signal` aborts the work, and the abort's reason is what is thrown.
   */
  synthesize(text: string, voice: NarrationVoice, options?: { signal?: AbortSignal }): Promise<SynthesizedAudio>;
}

export interface VoiceSample {
  filename: string;
  /** e.g. "audio/mpeg", "audio/wav". */
  contentType: string;
  data: Buffer;
}

export interface VoiceCloner {
  /** "local", "elevenlabs". */
  readonly name: string;
  /**
   * Creates a voice from an author's recordings. `requiresVerification` is the provider asking
   * the voice's owner to confirm it is theirs before it speaks. Throws RangeError when there are
   * no samples, ProviderFailed for what the author should be told.
   */
  clone(input: { name: string; samples: VoiceSample[] }, options?: { signal?: AbortSignal }): Promise<{ providerVoiceId: string; requiresVerification: boolean }>;
  /**
   * Deletes a voice this cloner made (its owner's account was erased). Resolves when the provider
   * deleted it or does not know it (deleted already: a retry after an answer that was lost), so
   * it may be called again freely; throws ProviderFailed when the provider would not.
   */
  deleteVoice(providerVoiceId: string, options?: { signal?: AbortSignal }): Promise<void>;
}

export type ProviderFailureReason = 'TIMEOUT' | 'REFUSED' | 'PROVIDER_ERROR' | 'INVALID_RESPONSE';

/** A provider call that failed in a way the author should hear about; `message` is safe to show and never holds a key. */
export class ProviderFailed extends Error {
  constructor(
    readonly reason: ProviderFailureReason,
    message: string,
  ) {
    super(message);
    this.name = 'ProviderFailed';
  }
}

/**
 * OpenAI's built-in voices (the SDK's `SpeechCreateParams.voice`, late 2026): the stock voices
 * Storyloom offers, which the local synthesizer imitates so a voice chosen offline still exists
 * when OpenAI speaks. tts-1 and tts-1-hd accept fewer of them than gpt-4o-mini-tts.
 */
export const STOCK_VOICES = ['alloy', 'ash', 'ballad', 'coral', 'echo', 'fable', 'onyx', 'nova', 'sage', 'shimmer', 'verse', 'marin', 'cedar'] as const;

/** The caller's contract: every adapter refuses the same texts the same way, before any I/O. */
export function checkSpeakable(adapter: string, text: string, maxChars: number): void {
  if (!/[\p{L}\p{N}]/u.test(text)) throw new RangeError(`${adapter}: nothing to say (the text has no letters or digits)`);
  if (text.length > maxChars) throw new RangeError(`${adapter}: the text is ${text.length} characters; one call takes at most ${maxChars} (split it with splitForSpeech)`);
}

/** The label a voice is known by in messages. */
export function describeVoice(voice: NarrationVoice): string {
  return voice.kind === 'STOCK' ? `stock voice "${voice.stockVoice}"` : `cloned voice "${voice.providerVoiceId}"`;
}
