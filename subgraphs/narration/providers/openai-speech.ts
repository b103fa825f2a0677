/**
 * The OpenAI adapter of the speech port: `POST /audio/speech` through the official SDK, which
 * owns retries and backoff. The SDK hands back the raw fetch Response (the endpoint answers
 * audio bytes, not JSON); its body is read within each attempt's deadline (http.ts).
 */
import OpenAI from 'openai';
import { MalformedAudio, readMp3, repairWav, wavDurationMs } from './audio.js';
import { attempts, checkClientOptions, fetchWithBodyDeadline, redact, untilAborted } from '../../../platform/http/provider-http.js';
import { checkSpeakable, ProviderFailed, STOCK_VOICES, type AudioFormat, type NarrationVoice, type SpeechSynthesizer, type SynthesizedAudio } from './speech.js';

export interface OpenAISpeechOptions {
  apiKey: string;
  /** Includes `/v1`; the SDK's default (api.openai.com, or OPENAI_BASE_URL) when absent. */
  baseURL?: string;
  /** e.g. "gpt-4o-mini-tts", "tts-1"; the caller chooses the default. */
  model: string;
  /** 'mp3' when absent. OpenAI's WAV is 24 kHz mono 16-bit; its MP3 is smaller by ten. */
  format?: AudioFormat;
  /** How to read ("Warm and unhurried, like an audiobook narrator"); gpt-4o-mini-tts only, tts-1 rejects it. */
  instructions?: string;
  /** Per attempt, from sending the request to the last byte of audio. */
  timeoutMs: number;
  /** Retries after the first attempt, for timeouts, connection errors, 408/409/429/5xx. */
  maxRetries: number;
}

/** The API's limit on `input` (SDK: "The maximum length is 4096 characters"). */
export const OPENAI_SPEECH_MAX_CHARS = 4096;

export class OpenAISpeechSynthesizer implements SpeechSynthesizer {
  readonly name = 'openai';
  readonly maxChars = OPENAI_SPEECH_MAX_CHARS;
  readonly stockVoices: readonly string[] = STOCK_VOICES;
  readonly #client: OpenAI;
  readonly #options: OpenAISpeechOptions & { format: AudioFormat };

  constructor(options: OpenAISpeechOptions) {
    checkClientOptions('OpenAISpeechSynthesizer', options);
    if (!options.model) throw new RangeError('OpenAISpeechSynthesizer: model is required');
    const format = options.format ?? 'mp3';
    if (format !== 'mp3' && format !== 'wav') throw new RangeError(`OpenAISpeechSynthesizer: format must be mp3 or wav, got ${String(format)}`);
    this.#options = { ...options, format };
    this.#client = new OpenAI({
      apiKey: options.apiKey,
      baseURL: options.baseURL,
      timeout: options.timeoutMs,
      maxRetries: options.maxRetries,
      fetch: fetchWithBodyDeadline(options.timeoutMs),
    });
  }

  async synthesize(text: string, voice: NarrationVoice, options: { signal?: AbortSignal } = {}): Promise<SynthesizedAudio> {
    const { signal } = options;
    signal?.throwIfAborted();
    checkSpeakable('OpenAISpeechSynthesizer', text, this.maxChars);
    if (voice.kind === 'CLONED') {
      // OpenAI's own custom voices ({ id }) are not what our cloners make: those ids belong to another provider.
      throw new ProviderFailed('REFUSED', 'OpenAI speaks only its stock voices; a cloned voice needs the provider that cloned it (ElevenLabs).');
    }
    const { model, format, instructions } = this.#options;
    let bytes: Buffer;
    let contentType: string;
    try {
      const request = this.#client.audio.speech.create(
        { model, input: text, voice: voice.stockVoice, response_format: format, ...(instructions ? { instructions } : {}) },
        { signal },
      );
      const response = await untilAborted(request, signal);
      contentType = response.headers.get('content-type') ?? '';
      bytes = Buffer.from(await response.arrayBuffer());
    } catch (error) {
      throw this.#failure(error, signal);
    }
    return this.#audio(bytes, contentType);
  }

  #audio(bytes: Buffer, contentType: string): SynthesizedAudio {
    const { format } = this.#options;
    if (bytes.length === 0) throw new ProviderFailed('INVALID_RESPONSE', 'OpenAI answered with no audio.');
    // A proxy or captive portal can answer 200 with a page; so can an API that changed its mind.
    if (/json|text|html/i.test(contentType)) throw new ProviderFailed('INVALID_RESPONSE', `OpenAI answered ${contentType.split(';')[0]} instead of ${format} audio.`);
    try {
      if (format === 'wav') {
        // OpenAI streams WAV with 0xFFFFFFFF for the RIFF and data sizes; strict readers need real ones.
        const audio = repairWav(bytes);
        return { audio, format, durationMs: wavDurationMs(audio) };
      }
      return { audio: bytes, format, durationMs: readMp3(bytes).durationMs };
    } catch (error) {
      if (error instanceof MalformedAudio) throw new ProviderFailed('INVALID_RESPONSE', `OpenAI answered with audio that is not valid ${format}: ${error.message}.`);
      throw error;
    }
  }

  /** Maps what the SDK threw (after its retries) to what the port promises. */
  #failure(error: unknown, signal: AbortSignal | undefined): unknown {
    // Shutdown is not the author's fault: surface the abort itself.
    if (signal?.aborted) return signal.reason ?? error;
    const { apiKey, timeoutMs, maxRetries } = this.#options;
    if (error instanceof OpenAI.APIConnectionTimeoutError) {
      return new ProviderFailed('TIMEOUT', `OpenAI did not answer within ${timeoutMs} ms (${attempts(maxRetries + 1)}).`);
    }
    if (error instanceof OpenAI.APIConnectionError) {
      return new ProviderFailed('PROVIDER_ERROR', redact(`Could not reach OpenAI (${attempts(maxRetries + 1)}): ${error.message}`, apiKey));
    }
    if (error instanceof OpenAI.AuthenticationError) {
      return new ProviderFailed('PROVIDER_ERROR', 'OpenAI refused the API key (401): check the OpenAI API key configured for narration.');
    }
    if (error instanceof OpenAI.APIError) {
      const body = error.error as { message?: unknown } | undefined;
      const detail = typeof body?.message === 'string' ? body.message : '';
      const code = typeof error.code === 'string' && error.code ? ` ${error.code}` : '';
      return new ProviderFailed('PROVIDER_ERROR', redact(`OpenAI answered ${error.status ?? 'an error'}${code}${detail ? `: ${detail}` : ''}`, apiKey));
    }
    return error;
  }
}
