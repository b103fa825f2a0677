import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FAKE_SPEECH_SAMPLE_RATE, fakeSpeechAudio, startFakeOpenAI, type FakeOpenAI } from '../../../test/fakes/openai.js';
import { joinAudio, readMp3, splitForSpeech } from './audio.js';
import { OpenAISpeechSynthesizer, type OpenAISpeechOptions } from './openai-speech.js';
import { ProviderFailed, type NarrationVoice } from './speech.js';
import { parseWav } from './wav.js';

let fake: FakeOpenAI;
beforeEach(async () => {
  fake = await startFakeOpenAI();
});
afterEach(() => fake.close());

const synthesizer = (options: Partial<OpenAISpeechOptions> = {}) =>
  new OpenAISpeechSynthesizer({ apiKey: fake.apiKey, baseURL: fake.url, model: 'gpt-4o-mini-tts', timeoutMs: 5_000, maxRetries: 0, ...options });

const nova: NarrationVoice = { kind: 'STOCK', stockVoice: 'nova' };
const text = 'Late one night, young Mira climbed the tower stairs. At the top, old Reyes was waiting.';

/** The ProviderFailed a promise rejects with (failing the test if it resolves or throws anything else). */
async function failureOf(promise: Promise<unknown>): Promise<ProviderFailed> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ProviderFailed);
  return error as ProviderFailed;
}

describe('OpenAISpeechSynthesizer', () => {
  it('asks for speech with the model, text, voice and format, and returns the MP3 as sent', async () => {
    const result = await synthesizer().synthesize(text, nova);

    expect(fake.speechRequests).toHaveLength(1);
    const request = fake.speechRequests[0]!;
    expect(request).toMatchObject({ method: 'POST', path: '/v1/audio/speech' });
    expect(request.headers.authorization).toBe(`Bearer ${fake.apiKey}`);
    expect(request.headers['content-type']).toMatch(/^application\/json/);
    expect(request.body).toEqual({ model: 'gpt-4o-mini-tts', input: text, voice: 'nova', response_format: 'mp3' });

    expect(result.format).toBe('mp3');
    expect(result.audio.equals(fakeSpeechAudio(text, 'nova', 'mp3'))).toBe(true);
    const { frameCount, sampleRate } = readMp3(result.audio);
    expect(sampleRate).toBe(FAKE_SPEECH_SAMPLE_RATE);
    expect(result.durationMs).toBe(Math.round(((frameCount * 576) / FAKE_SPEECH_SAMPLE_RATE) * 1000));
  });

  it('sends reading instructions when configured', async () => {
    await synthesizer({ instructions: 'Warm and unhurried, like an audiobook narrator.' }).synthesize(text, nova);
    expect(fake.speechRequests[0]!.body.instructions).toBe('Warm and unhurried, like an audiobook narrator.');
  });

  it('returns WAV with real sizes in place of the 0xFFFFFFFF OpenAI streams', async () => {
    const result = await synthesizer({ format: 'wav' }).synthesize(text, nova);
    expect(fake.speechRequests[0]!.body.response_format).toBe('wav');
    expect(result.format).toBe('wav');
    expect(result.audio.readUInt32LE(4)).toBe(result.audio.length - 8);
    const wav = parseWav(result.audio);
    expect(wav.format).toMatchObject({ sampleRate: 24000, channels: 1, bitsPerSample: 16 });
    expect(wav.data.equals(fakeSpeechAudio(text, 'nova', 'wav').subarray(44))).toBe(true);
    expect(result.durationMs).toBe(Math.round((text.length / 15) * 1000));
  });

  it('narrates a long text in parts that join into one file', async () => {
    const long = Array.from({ length: 12 }, (_, i) => `Night ${i + 1}: ${'the storm came back and the keepers kept the lamp burning until dawn. '.repeat(6)}`).join('\n\n');
    const speech = synthesizer();
    const parts = splitForSpeech(long, speech.maxChars);
    expect(parts.length).toBeGreaterThan(1);
    const audio = [];
    for (const part of parts) audio.push(await speech.synthesize(part, nova));
    const joined = joinAudio(audio);

    expect(fake.speechRequests.map((r) => r.body.input)).toEqual(parts);
    expect(fake.speechRequests.every((r) => String(r.body.input).length <= 4096)).toBe(true);
    expect(joined.durationMs).toBe(audio.reduce((sum, a) => sum + a.durationMs!, 0));
    expect(readMp3(joined.audio).frameCount).toBe(audio.reduce((sum, a) => sum + readMp3(a.audio).frameCount, 0));
    expect(joined.audio.includes('ID3')).toBe(false);
  });

  it('refuses a cloned voice without calling OpenAI', async () => {
    const failure = await failureOf(synthesizer().synthesize(text, { kind: 'CLONED', providerVoiceId: 'abc123' }));
    expect(failure.reason).toBe('REFUSED');
    expect(failure.message).toMatch(/only its stock voices/);
    expect(fake.requests).toHaveLength(0);
  });

  it('refuses a text longer than one call takes, before calling', async () => {
    await expect(synthesizer().synthesize('a'.repeat(4097), nova)).rejects.toThrow(RangeError);
    expect(fake.requests).toHaveLength(0);
  });

  it('retries a server error and succeeds within maxRetries', async () => {
    fake.speechFail(500);
    const result = await synthesizer({ maxRetries: 1 }).synthesize(text, nova);
    expect(result.audio.length).toBeGreaterThan(0);
    expect(fake.speechRequests).toHaveLength(2);
  });

  it('reports a server error that persists as PROVIDER_ERROR, with the status', async () => {
    fake.speechFail(503, 2);
    const failure = await failureOf(synthesizer({ maxRetries: 1 }).synthesize(text, nova));
    expect(failure.reason).toBe('PROVIDER_ERROR');
    expect(failure.message).toBe('OpenAI answered 503: The engine is currently overloaded, please try again later.');
    expect(fake.speechRequests).toHaveLength(2);
  });

  it('times out each attempt, retries, then reports TIMEOUT', async () => {
    fake.speechHang(2);
    const failure = await failureOf(synthesizer({ timeoutMs: 300, maxRetries: 1 }).synthesize(text, nova));
    expect(failure.reason).toBe('TIMEOUT');
    expect(failure.message).toBe('OpenAI did not answer within 300 ms (2 attempts).');
    expect(fake.speechRequests).toHaveLength(2);
  });

  it('times out audio that stops halfway (the SDK timeout alone ends at the headers)', async () => {
    fake.speechStall();
    const failure = await failureOf(synthesizer({ timeoutMs: 300 }).synthesize(text, nova));
    expect(failure.reason).toBe('TIMEOUT');
    expect(fake.speechRequests).toHaveLength(1);
  });

  it('reports a refused API key as PROVIDER_ERROR without retrying and without the key', async () => {
    const wrongKey = 'sk-wrong-0123456789abcdef';
    const failure = await failureOf(synthesizer({ apiKey: wrongKey, maxRetries: 2 }).synthesize(text, nova));
    expect(failure.reason).toBe('PROVIDER_ERROR');
    expect(failure.message).toBe('OpenAI refused the API key (401): check the OpenAI API key configured for narration.');
    expect(failure.message).not.toContain(wrongKey);
    expect(fake.requests).toHaveLength(1);
  });

  it('passes on what OpenAI says of a bad request, without the key', async () => {
    const failure = await failureOf(synthesizer().synthesize(text, { kind: 'STOCK', stockVoice: 'Rachel' }));
    expect(failure.reason).toBe('PROVIDER_ERROR');
    expect(failure.message).toMatch(/^OpenAI answered 400 invalid_value: Invalid value for 'voice': 'Rachel'/);

    fake.speechFail(400, 1, { message: `Bad request made with key ${fake.apiKey}` });
    const quoted = await failureOf(synthesizer().synthesize(text, nova));
    expect(quoted.message).toBe('OpenAI answered 400: Bad request made with key [redacted]');
  });

  it('reports a 200 without audio as INVALID_RESPONSE', async () => {
    fake.speechEmpty();
    const failure = await failureOf(synthesizer().synthesize(text, nova));
    expect(failure.reason).toBe('INVALID_RESPONSE');
    expect(failure.message).toBe('OpenAI answered with no audio.');
  });

  it('stops a request in flight when the signal aborts, with the abort rather than a ProviderFailed', async () => {
    fake.speechHang();
    const controller = new AbortController();
    const speech = synthesizer({ maxRetries: 2 }).synthesize(text, nova, { signal: controller.signal });
    await fake.waitForRequests(1);
    controller.abort(new Error('subgraph stopping'));
    await expect(speech).rejects.toThrow('subgraph stopping');
    expect(fake.requests).toHaveLength(1);
  });

  it('does not wait out a retry-after when the signal aborts', async () => {
    fake.speechFail(429, 1, undefined, { 'retry-after-ms': '120000' });
    const controller = new AbortController();
    const speech = synthesizer({ maxRetries: 1 }).synthesize(text, nova, { signal: controller.signal });
    await fake.waitForRequests(1);
    controller.abort(new Error('subgraph stopping'));
    await expect(speech).rejects.toThrow('subgraph stopping');
  });

  it('checks its options', () => {
    expect(() => synthesizer({ apiKey: '' })).toThrow(/apiKey/);
    expect(() => synthesizer({ timeoutMs: 0 })).toThrow(/timeoutMs/);
    expect(() => synthesizer({ maxRetries: -1 })).toThrow(/maxRetries/);
    expect(() => synthesizer({ format: 'ogg' as 'mp3' })).toThrow(/format/);
  });
});
