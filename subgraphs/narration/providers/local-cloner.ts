/**
 * The offline adapter of the voice-cloning port. It learns nothing from the samples: the voice
 * id is a digest of their bytes, so the same recordings always make the same voice, and the
 * local synthesizer turns that id into a pitch of its own.
 */
import { createHash } from 'node:crypto';
import type { VoiceCloner, VoiceSample } from './speech.js';

export class LocalVoiceCloner implements VoiceCloner {
  readonly name = 'local';

  async clone(input: { name: string; samples: VoiceSample[] }, options: { signal?: AbortSignal } = {}): Promise<{ providerVoiceId: string; requiresVerification: boolean }> {
    options.signal?.throwIfAborted();
    if (input.samples.length === 0) throw new RangeError('LocalVoiceCloner: a voice needs at least one sample');
    const hash = createHash('sha256');
    for (const sample of input.samples) {
      // Length first, so moving bytes from one sample to the next makes another voice.
      const length = Buffer.alloc(8);
      length.writeBigUInt64BE(BigInt(sample.data.length));
      hash.update(length).update(sample.data);
    }
    return { providerVoiceId: `local-${hash.digest('hex').slice(0, 16)}`, requiresVerification: false };
  }

  /** Nothing to forget: a local voice is its id, and lives nowhere else. */
  async deleteVoice(providerVoiceId: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    options.signal?.throwIfAborted();
    if (!providerVoiceId) throw new RangeError('LocalVoiceCloner: which voice?');
  }
}
