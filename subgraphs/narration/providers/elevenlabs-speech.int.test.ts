import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FAKE_PREMADE_VOICES, fakeSpeech, mp3FramesMs, startFakeElevenLabs, type FakeElevenLabs } from '../../../test/fakes/elevenlabs.js';
import { freePort } from '../../../test/support/net.js';
import { joinAudio, readMp3, splitForSpeech } from './audio.js';
import { ElevenLabsSpeechSynthesizer, type ElevenLabsSpeechOptions } from './elevenlabs-speech.js';
import { ProviderFailed, type NarrationVoice } from './speech.js';

let fake: FakeElevenLabs;
beforeEach(async () => {
  fake = await startFakeElevenLabs();
  fake.voices.add('clonedVoice0000000001');
});
afterEach(() => fake.close());

const synthesizer = (options: Partial<ElevenLabsSpeechOptions> = {}) =>
  new ElevenLabsSpeechSynthesizer({ apiKey: fake.apiKey, baseUrl: fake.url, modelId: 'eleven_multilingual_v2', timeoutMs: 5_000, maxRetries: 0, ...options });

const cloned: NarrationVoice = { kind: 'CLONED', providerVoiceId: 'clonedVoice0000000001' };
const text = 'Late one night, young Mira climbed the tower stairs. At the top, old Reyes was waiting.';

async function failureOf(promise: Promise<unknown>): Promise<ProviderFailed> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ProviderFailed);
  return error as ProviderFailed;
}

describe('ElevenLabsSpeechSynthesizer', () => {
  it('speaks with a cloned voice: the voice id in the path, the key in xi-api-key, MP3 back', async () => {
    const result = await synthesizer().synthesize(text, cloned);

    expect(fake.requests).toHaveLength(1);
    const request = fake.requests[0]!;
    expect(request).toMatchObject({ method: 'POST', path: '/v1/text-to-speech/clonedVoice0000000001', query: { output_format: 'mp3_44100_128' } });
    expect(request.headers['xi-api-key']).toBe(fake.apiKey);
    expect(request.headers.authorization).toBeUndefined();
    expect(request.json).toEqual({ text, model_id: 'eleven_multilingual_v2' });

    expect(result.format).toBe('mp3');
    expect(result.audio.equals(fakeSpeech(text, 'clonedVoice0000000001'))).toBe(true);
    expect(result.durationMs).toBe(mp3FramesMs(readMp3(result.audio).frameCount));
  });

  it('speaks a stock voice by its ElevenLabs id, in the configured output format', async () => {
    const speech = synthesizer({ stockVoices: FAKE_PREMADE_VOICES, outputFormat: 'mp3_22050_32' });
    expect(speech.stockVoices).toEqual(FAKE_PREMADE_VOICES);
    const result = await speech.synthesize(text, { kind: 'STOCK', stockVoice: FAKE_PREMADE_VOICES[0] });
    expect(fake.requests[0]).toMatchObject({ path: `/v1/text-to-speech/${FAKE_PREMADE_VOICES[0]}`, query: { output_format: 'mp3_22050_32' } });
    expect(readMp3(result.audio).sampleRate).toBe(22050);
  });

  it('takes as much text as the model does, and joins its parts', async () => {
    expect(synthesizer().maxChars).toBe(10_000);
    expect(synthesizer({ modelId: 'eleven_flash_v2_5' }).maxChars).toBe(40_000);
    expect(synthesizer({ modelId: 'eleven_someday_v9' }).maxChars).toBe(5_000);
    const speech = synthesizer({ maxChars: 100 });
    const parts = splitForSpeech(`${text}\n\n${text}\n\n${text}`, speech.maxChars);
    const audio = [];
    for (const part of parts) audio.push(await speech.synthesize(part, cloned));
    expect(parts).toHaveLength(3);
    expect(joinAudio(audio).durationMs).toBe(audio.reduce((sum, a) => sum + a.durationMs!, 0));
  });

  it('reports an unknown voice as PROVIDER_ERROR with ElevenLabs’ words', async () => {
    const failure = await failureOf(synthesizer({ maxRetries: 2 }).synthesize(text, { kind: 'CLONED', providerVoiceId: 'deletedVoice' }));
    expect(failure.reason).toBe('PROVIDER_ERROR');
    expect(failure.message).toBe('ElevenLabs answered 404 voice_not_found: A voice with the voice_id deletedVoice was not found.');
    expect(fake.requests).toHaveLength(1);
  });

  it('reports a validation error (422) with the field it names', async () => {
    fake.fail(422);
    const failure = await failureOf(synthesizer().synthesize(text, cloned));
    expect(failure.message).toBe('ElevenLabs answered 422: body.text: String should have at least 1 character');
  });

  it('reports a refused key as PROVIDER_ERROR without retrying and without the key', async () => {
    const wrongKey = 'sk_wrong0123456789abcdef';
    const failure = await failureOf(synthesizer({ apiKey: wrongKey, maxRetries: 2 }).synthesize(text, cloned));
    expect(failure.reason).toBe('PROVIDER_ERROR');
    expect(failure.message).toBe('ElevenLabs refused the API key (401): check the ElevenLabs API key configured for narration.');
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]!.headers['xi-api-key']).toBe(wrongKey);
  });

  it('tells an account out of credits (also a 401) from a refused key', async () => {
    fake.fail(401, 1, { status: 'quota_exceeded', message: 'This request exceeds your quota of 10000. You have 0 credits remaining.' });
    const failure = await failureOf(synthesizer({ maxRetries: 2 }).synthesize(text, cloned));
    expect(failure.message).toBe('ElevenLabs quota exceeded: This request exceeds your quota of 10000. You have 0 credits remaining.');
    expect(fake.requests).toHaveLength(1);
  });

  it('retries a server error and succeeds within maxRetries', async () => {
    fake.fail(500);
    const result = await synthesizer({ maxRetries: 1 }).synthesize(text, cloned);
    expect(result.audio.equals(fakeSpeech(text, 'clonedVoice0000000001'))).toBe(true);
    expect(fake.requests).toHaveLength(2);
  });

  it('reports a server error that persists as PROVIDER_ERROR, with the status', async () => {
    fake.fail(500, 3);
    const failure = await failureOf(synthesizer({ maxRetries: 2 }).synthesize(text, cloned));
    expect(failure.reason).toBe('PROVIDER_ERROR');
    expect(failure.message).toBe('ElevenLabs answered 500 something_went_wrong: We are sorry, something went wrong. You are not charged for this request.');
    expect(fake.requests).toHaveLength(3);
  });

  it('does not hold a narration for a Retry-After longer than a minute', async () => {
    fake.fail(429, 1, undefined, { 'retry-after': '120' });
    const failure = await failureOf(synthesizer({ maxRetries: 2 }).synthesize(text, cloned));
    expect(failure.message).toMatch(/^ElevenLabs answered 429 too_many_concurrent_requests/);
    expect(fake.requests).toHaveLength(1);
  });

  it('times out each attempt, retries, then reports TIMEOUT', async () => {
    fake.hang(2);
    const failure = await failureOf(synthesizer({ timeoutMs: 300, maxRetries: 1 }).synthesize(text, cloned));
    expect(failure.reason).toBe('TIMEOUT');
    expect(failure.message).toBe('ElevenLabs did not answer within 300 ms (2 attempts).');
    expect(fake.requests).toHaveLength(2);
  });

  it('times out audio that stops halfway, and succeeds on the retry', async () => {
    fake.stall();
    const result = await synthesizer({ timeoutMs: 300, maxRetries: 1 }).synthesize(text, cloned);
    expect(result.audio.equals(fakeSpeech(text, 'clonedVoice0000000001'))).toBe(true);
    expect(fake.requests).toHaveLength(2);
  });

  it('reports a connection that cannot be made as PROVIDER_ERROR', async () => {
    const failure = await failureOf(synthesizer({ baseUrl: `http://127.0.0.1:${await freePort()}` }).synthesize(text, cloned));
    expect(failure.reason).toBe('PROVIDER_ERROR');
    expect(failure.message).toMatch(/^Could not reach ElevenLabs \(1 attempt\): fetch failed \(.*ECONNREFUSED.*\)$/);
  });

  it('reports bytes that are not MP3 as INVALID_RESPONSE', async () => {
    fake.malformed();
    const failure = await failureOf(synthesizer().synthesize(text, cloned));
    expect(failure.reason).toBe('INVALID_RESPONSE');
    expect(failure.message).toMatch(/^ElevenLabs answered with audio that is not valid MP3/);
  });

  it('keeps the key out of a provider message that quotes it', async () => {
    fake.fail(400, 1, { status: 'invalid_request', message: `Key ${fake.apiKey} cannot do this` });
    const failure = await failureOf(synthesizer().synthesize(text, cloned));
    expect(failure.message).toBe('ElevenLabs answered 400 invalid_request: Key [redacted] cannot do this');
  });

  it('stops a request in flight, and a wait for a retry, when the signal aborts', async () => {
    fake.hang();
    const controller = new AbortController();
    const speech = synthesizer({ maxRetries: 2 }).synthesize(text, cloned, { signal: controller.signal });
    await fake.waitForRequests(1);
    controller.abort(new Error('subgraph stopping'));
    await expect(speech).rejects.toThrow('subgraph stopping');

    fake.fail(429, 1, undefined, { 'retry-after': '30' });
    const waiting = new AbortController();
    const retrying = synthesizer({ maxRetries: 1 }).synthesize(text, cloned, { signal: waiting.signal });
    await fake.waitForRequests(2);
    waiting.abort(new Error('subgraph stopping'));
    await expect(retrying).rejects.toThrow('subgraph stopping');
    expect(fake.requests).toHaveLength(2);
  });

  it('checks its options and the text', async () => {
    expect(() => synthesizer({ apiKey: '' })).toThrow(/apiKey/);
    expect(() => synthesizer({ modelId: '' })).toThrow(/modelId/);
    expect(() => synthesizer({ outputFormat: 'pcm_16000' as 'mp3_44100_128' })).toThrow(/MP3/);
    await expect(synthesizer({ maxChars: 10 }).synthesize('eleven char', cloned)).rejects.toThrow(RangeError);
    expect(fake.requests).toHaveLength(0);
  });
});
