/**
 * The ElevenLabs adapter of the voice-cloning port: instant voice cloning, `POST /v1/voices/add`
 * (multipart: `name`, one `files` part per sample) through the SDK's `voices.ivc.create`, which
 * resolves to `{ voiceId, requiresVerification }` already parsed and checked. Creating a voice is
 * not idempotent, so it is retried only when the server surely did nothing (elevenlabs-client.ts).
 */
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
}
