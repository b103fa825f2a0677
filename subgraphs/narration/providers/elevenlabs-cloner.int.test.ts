import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mp3Bytes, startFakeElevenLabs, type FakeElevenLabs } from '../../../test/fakes/elevenlabs.js';
import { ElevenLabsVoiceCloner, type ElevenLabsClonerOptions } from './elevenlabs-cloner.js';
import { ElevenLabsSpeechSynthesizer } from './elevenlabs-speech.js';
import { LocalSpeechSynthesizer } from './local-speech.js';
import { ProviderFailed, type VoiceSample } from './speech.js';

let fake: FakeElevenLabs;
beforeEach(async () => {
  fake = await startFakeElevenLabs();
});
afterEach(() => fake.close());

const cloner = (options: Partial<ElevenLabsClonerOptions> = {}) =>
  new ElevenLabsVoiceCloner({ apiKey: fake.apiKey, baseUrl: fake.url, timeoutMs: 5_000, maxRetries: 0, ...options });

async function samples(): Promise<VoiceSample[]> {
  const local = new LocalSpeechSynthesizer();
  const wavs = await Promise.all(['One.', 'Two, three.', 'Four five six.'].map((t) => local.synthesize(t, { kind: 'STOCK', stockVoice: 'sage' })));
  return [
    ...wavs.map((w, i) => ({ filename: `take-${i + 1}.wav`, contentType: 'audio/wav', data: w.audio })),
    { filename: 'take-4.mp3', contentType: 'audio/mpeg', data: mp3Bytes({ frames: 40, fill: Buffer.from('four') }) },
    { filename: 'Grandma’s story.webm', contentType: 'audio/webm', data: Buffer.from('webm bytes') },
  ];
}

async function failureOf(promise: Promise<unknown>): Promise<ProviderFailed> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ProviderFailed);
  return error as ProviderFailed;
}

describe('ElevenLabsVoiceCloner', () => {
  it('sends every sample as a files part with its name and type, and returns a voice that speaks', async () => {
    const five = await samples();
    const voice = await cloner().clone({ name: ' Grandma ', samples: five });

    expect(fake.requests).toHaveLength(1);
    const request = fake.requests[0]!;
    expect(request).toMatchObject({ method: 'POST', path: '/v1/voices/add' });
    expect(request.headers['xi-api-key']).toBe(fake.apiKey);
    expect(request.headers['content-type']).toMatch(/^multipart\/form-data; boundary=/);
    expect(request.form!.fields).toEqual({ name: ['Grandma'] });
    expect(request.form!.files).toEqual(
      five.map((s) => ({ field: 'files', filename: s.filename, contentType: s.contentType, size: s.data.length, sha256: createHash('sha256').update(s.data).digest('hex') })),
    );

    expect(voice).toEqual({ providerVoiceId: expect.stringMatching(/^[A-Za-z0-9]{20}$/), requiresVerification: false });
    expect(fake.voices.has(voice.providerVoiceId)).toBe(true);
    const speech = new ElevenLabsSpeechSynthesizer({ apiKey: fake.apiKey, baseUrl: fake.url, modelId: 'eleven_multilingual_v2', timeoutMs: 5_000, maxRetries: 0 });
    const spoken = await speech.synthesize('Hello, dear.', { kind: 'CLONED', providerVoiceId: voice.providerVoiceId });
    expect(spoken.audio.length).toBeGreaterThan(0);
  });

  it('sends the configured description and background-noise removal', async () => {
    await cloner({ description: 'Storyloom narration voice', removeBackgroundNoise: true }).clone({ name: 'Grandma', samples: (await samples()).slice(0, 1) });
    expect(fake.requests[0]!.form!.fields).toEqual({ name: ['Grandma'], remove_background_noise: ['true'], description: ['Storyloom narration voice'] });
  });

  it('does not retry a server error: the voice may have been made', async () => {
    fake.fail(500);
    const failure = await failureOf(cloner({ maxRetries: 2 }).clone({ name: 'Grandma', samples: await samples() }));
    expect(failure.reason).toBe('PROVIDER_ERROR');
    expect(failure.message).toMatch(/^ElevenLabs answered 500 something_went_wrong/);
    expect(fake.requests).toHaveLength(1);
  });

  it('does not retry a timeout either, and says so', async () => {
    fake.hang();
    const failure = await failureOf(cloner({ timeoutMs: 300, maxRetries: 2 }).clone({ name: 'Grandma', samples: await samples() }));
    expect(failure.reason).toBe('TIMEOUT');
    expect(failure.message).toBe('ElevenLabs did not answer within 300 ms (1 attempt).');
    expect(fake.requests).toHaveLength(1);
  });

  it('retries a rate limit, which made nothing', async () => {
    fake.fail(429);
    const voice = await cloner({ maxRetries: 1 }).clone({ name: 'Grandma', samples: await samples() });
    expect(fake.voices.has(voice.providerVoiceId)).toBe(true);
    expect(fake.requests).toHaveLength(2);
    expect(fake.requests[1]!.form!.files).toHaveLength(5);
  });

  it('reports an answer without a voice id as INVALID_RESPONSE', async () => {
    fake.malformed();
    const failure = await failureOf(cloner().clone({ name: 'Grandma', samples: await samples() }));
    expect(failure.reason).toBe('INVALID_RESPONSE');
    expect(failure.message).toMatch(/^ElevenLabs answered with an unexpected shape/);
  });

  it('reports a refused key as PROVIDER_ERROR without the key', async () => {
    const failure = await failureOf(cloner({ apiKey: 'sk_wrong0123456789' }).clone({ name: 'Grandma', samples: await samples() }));
    expect(failure.message).toBe('ElevenLabs refused the API key (401): check the ElevenLabs API key configured for narration.');
  });

  it('needs a sample and a name before it calls', async () => {
    await expect(cloner().clone({ name: 'Grandma', samples: [] })).rejects.toThrow(RangeError);
    await expect(cloner().clone({ name: '  ', samples: await samples() })).rejects.toThrow(/name/);
    expect(fake.requests).toHaveLength(0);
  });
});

describe('ElevenLabsVoiceCloner.deleteVoice', () => {
  it('deletes a voice it cloned: ElevenLabs no longer speaks with it', async () => {
    const { providerVoiceId } = await cloner().clone({ name: 'Grandma', samples: await samples() });
    await cloner().deleteVoice(providerVoiceId);
    expect(fake.requests[1]).toMatchObject({ method: 'DELETE', path: `/v1/voices/${providerVoiceId}` });
    expect(fake.requests[1]!.headers['xi-api-key']).toBe(fake.apiKey);
    expect(fake.deletedVoices).toEqual([providerVoiceId]);
    const speech = new ElevenLabsSpeechSynthesizer({ apiKey: fake.apiKey, baseUrl: fake.url, modelId: 'eleven_multilingual_v2', timeoutMs: 5_000, maxRetries: 0 });
    await expect(speech.synthesize('Hello.', { kind: 'CLONED', providerVoiceId })).rejects.toThrow(ProviderFailed);
  });

  it('retries a server error or a timeout: deleting twice is harmless', async () => {
    const { providerVoiceId } = await cloner().clone({ name: 'Grandma', samples: await samples() });
    fake.fail(503);
    fake.hang();
    await cloner({ timeoutMs: 300, maxRetries: 2 }).deleteVoice(providerVoiceId);
    expect(fake.requests.slice(1).map((r) => r.method)).toEqual(['DELETE', 'DELETE', 'DELETE']);
    expect(fake.deletedVoices).toEqual([providerVoiceId]);
  });

  it('takes a voice ElevenLabs does not have for deleted (an earlier answer was lost)', async () => {
    const { providerVoiceId } = await cloner().clone({ name: 'Grandma', samples: await samples() });
    await cloner().deleteVoice(providerVoiceId);
    await cloner().deleteVoice(providerVoiceId);
    expect(fake.requests.slice(1).map((r) => r.method)).toEqual(['DELETE', 'DELETE']);
    expect(fake.deletedVoices).toEqual([providerVoiceId]);
  });

  it('fails on a 404 that does not say the voice is unknown (a wrong base URL), and on a refused key', async () => {
    const wrongPath = await failureOf(cloner({ baseUrl: `${fake.url}/elsewhere` }).deleteVoice('21m00Tcm4TlvDq8ikWAM'));
    expect(wrongPath.message).toMatch(/^ElevenLabs answered 404/);
    const refused = await failureOf(cloner({ apiKey: 'sk_wrong0123456789' }).deleteVoice('21m00Tcm4TlvDq8ikWAM'));
    expect(refused.message).toBe('ElevenLabs refused the API key (401): check the ElevenLabs API key configured for narration.');
    expect(fake.deletedVoices).toEqual([]);
  });
});
