import { describe, expect, it } from 'vitest';
import { LocalVoiceCloner } from './local-cloner.js';
import { LocalSpeechSynthesizer } from './local-speech.js';
import type { VoiceSample } from './speech.js';

const sample = (text: string, filename = 'take.wav'): VoiceSample => ({ filename, contentType: 'audio/wav', data: Buffer.from(text) });
const cloner = new LocalVoiceCloner();

describe('LocalVoiceCloner', () => {
  it('names a voice by a short digest of its samples: same samples, same voice', async () => {
    const samples = [sample('first take'), sample('second take')];
    const a = await cloner.clone({ name: 'Grandma', samples });
    const b = await new LocalVoiceCloner().clone({ name: 'Another name', samples: samples.map((s) => ({ ...s, filename: 'renamed.mp3', contentType: 'audio/mpeg' })) });
    expect(a).toEqual({ providerVoiceId: expect.stringMatching(/^local-[0-9a-f]{16}$/), requiresVerification: false });
    expect(b).toEqual(a);
    expect(cloner.name).toBe('local');
  });

  it('makes another voice from other samples, or the same bytes cut differently', async () => {
    const { providerVoiceId: a } = await cloner.clone({ name: 'v', samples: [sample('first take'), sample('second take')] });
    const { providerVoiceId: b } = await cloner.clone({ name: 'v', samples: [sample('first take'), sample('third take')] });
    const { providerVoiceId: c } = await cloner.clone({ name: 'v', samples: [sample('first tak'), sample('esecond take')] });
    expect(new Set([a, b, c]).size).toBe(3);
  });

  it('makes a voice the local synthesizer speaks with a pitch of its own', async () => {
    const local = new LocalSpeechSynthesizer();
    const { providerVoiceId } = await cloner.clone({ name: 'v', samples: [sample('take')] });
    const cloned = await local.synthesize('Hello there.', { kind: 'CLONED', providerVoiceId });
    const stock = await local.synthesize('Hello there.', { kind: 'STOCK', stockVoice: 'alloy' });
    expect(cloned.durationMs).toBe(stock.durationMs);
    expect(cloned.audio.equals(stock.audio)).toBe(false);
  });

  it('needs at least one sample', async () => {
    await expect(cloner.clone({ name: 'v', samples: [] })).rejects.toThrow(RangeError);
  });

  it('deletes a voice by forgetting it: there is nothing stored anywhere to delete', async () => {
    const { providerVoiceId } = await cloner.clone({ name: 'v', samples: [sample('take')] });
    await expect(cloner.deleteVoice(providerVoiceId)).resolves.toBeUndefined();
    await expect(cloner.deleteVoice(providerVoiceId)).resolves.toBeUndefined();
    await expect(cloner.deleteVoice(providerVoiceId, { signal: AbortSignal.abort() })).rejects.toThrow();
  });
});
