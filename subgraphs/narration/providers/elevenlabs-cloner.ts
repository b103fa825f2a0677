/**
 * The ElevenLabs adapter of the voice-cloning port: instant voice cloning, `POST /v1/voices/add`
 * (multipart: `name`, one `files` part per sample) through the SDK's `voices.ivc.create`, which
 * resolves to `{ voiceId, requiresVerification }` already parsed and checked. Creating a voice is
 * not idempotent, so it is retried only when the server surely did nothing (elevenlabs-client.ts).
 * Deleting one (`DELETE /v1/voices/{voice_id}`, the SDK's `voices.delete`) is, and is retried
 * like any idempotent call.
 */
import { ElevenLabsError } from '@elevenlabs/elevenlabs-js';
import { ElevenLabsCaller, type ElevenLabsConnection } from './elevenlabs-client.js';
import { ProviderFailed, type VoiceCloner, type VoiceSample } from './speech.js';

export interface ElevenLabsClonerOptions extends ElevenLabsConnection {
  /** ElevenLabs' audio isolation on the samples; it makes clean recordings worse, so off unless set. */
  removeBackgroundNoise?: boolean;
  /** Stored with each voice in the ElevenLabs account, to tell Storyloom's voices from others there. */
  description?: string;
}

export class ElevenLabsVoiceCloner implements VoiceCloner {
  readonly name = 'elevenlabs';
  readonly #caller: ElevenLabsCaller;
  readonly #options: ElevenLabsClonerOptions;

  constructor(options: ElevenLabsClonerOptions) {
    this.#caller = new ElevenLabsCaller('ElevenLabsVoiceCloner', options);
    this.#options = { ...options };
  }

  async clone(input: { name: string; samples: VoiceSample[] }, options: { signal?: AbortSignal } = {}): Promise<{ providerVoiceId: string; requiresVerification: boolean }> {
    const { signal } = options;
    signal?.throwIfAborted();
    if (input.samples.length === 0) throw new RangeError('ElevenLabsVoiceCloner: a voice needs at least one sample');
    const name = input.name.trim();
    if (!name) throw new RangeError('ElevenLabsVoiceCloner: a voice needs a name');
    const { removeBackgroundNoise, description } = this.#options;
    const created = await this.#caller.call(
      (request) =>
        this.#caller.client.voices.ivc.create(
          {
            name,
            // Without a filename and type the SDK sends every part as "blob", application/octet-stream.
            files: input.samples.map((s) => ({ data: s.data, filename: s.filename, contentType: s.contentType })),
            ...(removeBackgroundNoise !== undefined ? { removeBackgroundNoise } : {}),
            ...(description ? { description } : {}),
          },
          request,
        ),
      { signal, idempotent: false },
    );
    if (typeof created?.voiceId !== 'string' || !created.voiceId) throw new ProviderFailed('INVALID_RESPONSE', 'ElevenLabs answered without a voice id.');
    return { providerVoiceId: created.voiceId, requiresVerification: created.requiresVerification === true };
  }

  async deleteVoice(providerVoiceId: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    const { signal } = options;
    signal?.throwIfAborted();
    if (!providerVoiceId) throw new RangeError('ElevenLabsVoiceCloner: which voice?');
    await this.#caller.call(
      async (request) => {
        try {
          await this.#caller.client.voices.delete(providerVoiceId, request);
        } catch (error) {
          // Gone already (an earlier attempt deleted it and its answer was lost): what was asked is done.
          if (!isUnknownVoice(error)) throw error;
        }
      },
      { signal, idempotent: true },
    );
  }
}

/**
 * ElevenLabs says a voice does not exist with `voice_does_not_exist` (the voices routes) or
 * `voice_not_found` (others), under a 400 or a 404. A bare 404 is not taken for it: a wrong base
 * URL answers that too, and would pass every deletion off as done.
 */
function isUnknownVoice(error: unknown): boolean {
  if (!(error instanceof ElevenLabsError) || (error.statusCode !== 400 && error.statusCode !== 404)) return false;
  const detail = typeof error.body === 'object' && error.body !== null ? (error.body as { detail?: { status?: unknown } }).detail : undefined;
  return detail?.status === 'voice_does_not_exist' || detail?.status === 'voice_not_found';
}
