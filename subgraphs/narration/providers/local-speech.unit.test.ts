import { describe, expect, it } from 'vitest';
import { LOCAL_SAMPLE_RATE, LOCAL_SPEECH_SOFTWARE, LocalSpeechSynthesizer } from './local-speech.js';
import { ProviderFailed, STOCK_VOICES, type NarrationVoice } from './speech.js';
import { parseWav, readInfo, wavDurationMs } from './wav.js';

const local = new LocalSpeechSynthesizer();
const alloy: NarrationVoice = { kind: 'STOCK', stockVoice: 'alloy' };

const STORY =
  'Late one night, young Mira climbed the tower stairs. At the top, old Reyes was waiting with a lamp and a story about the sea. ' +
  'The storm came back, and the keepers kept the great lamp burning until dawn. The sea was loud, the stairs were cold, and nobody slept. ';

/** Samples of a WAV as numbers. */
function samples(audio: Buffer): Int16Array {
  const { data } = parseWav(audio);
  return new Int16Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.length));
}

/** Upward zero crossings a second over the sounding parts: a stand-in for pitch. */
function pitchOf(audio: Buffer): number {
  const s = samples(audio);
  let crossings = 0;
  let loud = 0;
  for (let i = 1; i < s.length; i++) {
    if (s[i - 1]! < 0 && s[i]! >= 0) crossings++;
    if (Math.abs(s[i]!) > 50) loud++;
  }
  return crossings / (loud / LOCAL_SAMPLE_RATE);
}

describe('LocalSpeechSynthesizer', () => {
  it('writes a valid 16-bit mono PCM WAV that says it is local', async () => {
    const result = await local.synthesize('Mira climbed the stairs.', alloy);
    expect(result.format).toBe('wav');
    const { audio } = result;
    expect(audio.toString('latin1', 0, 4)).toBe('RIFF');
    expect(audio.readUInt32LE(4)).toBe(audio.length - 8);
    expect(audio.toString('latin1', 8, 12)).toBe('WAVE');
    const wav = parseWav(audio);
    expect(wav.format).toEqual({ formatTag: 1, channels: 1, sampleRate: 22050, bitsPerSample: 16, blockAlign: 2 });
    expect(wav.fmt.readUInt32LE(8)).toBe(22050 * 2); // byte rate
    expect(readInfo(wav.info[0]!)).toMatchObject({ ISFT: LOCAL_SPEECH_SOFTWARE });
    expect(LOCAL_SPEECH_SOFTWARE).toMatch(/local.*not a real voice/);
    expect(result.durationMs).toBe(wavDurationMs(audio));
    expect(local).toMatchObject({ name: 'local', maxChars: 4096, stockVoices: STOCK_VOICES });
  });

  it('takes about as long as a narrator would, at some 150 words a minute', async () => {
    const text = STORY.repeat(3); // 150 words
    expect(text.split(/\s+/).filter(Boolean)).toHaveLength(150);
    const { durationMs } = await local.synthesize(text, alloy);
    expect(durationMs! / 1000).toBeGreaterThan(50);
    expect(durationMs! / 1000).toBeLessThan(75);
  });

  it('grows with the text, and pauses at punctuation', async () => {
    const lengths = await Promise.all([STORY.slice(0, 60), STORY, STORY.repeat(2)].map(async (t) => (await local.synthesize(t, alloy)).durationMs!));
    expect(lengths[0]).toBeLessThan(lengths[1]!);
    expect(lengths[1]).toBeLessThan(lengths[2]!);

    const run = await local.synthesize('one two three four five six', alloy);
    const stops = await local.synthesize('One. Two, three. Four; five. Six.', alloy);
    const paragraphs = await local.synthesize('One. Two, three.\n\nFour; five.\n\nSix.', alloy);
    expect(stops.durationMs!).toBeGreaterThan(run.durationMs! + 1000);
    expect(paragraphs.durationMs!).toBeGreaterThan(stops.durationMs!);
  });

  it('is audible without clicks: soft tones that fade in and out, silence at both ends', async () => {
    const s = samples((await local.synthesize(STORY, alloy)).audio);
    const peak = s.reduce((max, v) => Math.max(max, Math.abs(v)), 0);
    expect(peak).toBeGreaterThan(3000);
    expect(peak).toBeLessThan(16000);
    let jump = 0;
    for (let i = 1; i < s.length; i++) jump = Math.max(jump, Math.abs(s[i]! - s[i - 1]!));
    expect(jump).toBeLessThan(2000);
    expect(s.slice(0, 1000).every((v) => v === 0)).toBe(true);
    expect(s.slice(-1000).every((v) => v === 0)).toBe(true);
  });

  it('gives each voice its own pitch and the same timing', async () => {
    const voices: NarrationVoice[] = [alloy, { kind: 'STOCK', stockVoice: 'onyx' }, { kind: 'CLONED', providerVoiceId: 'local-0123456789abcdef' }];
    const results = await Promise.all(voices.map((v) => local.synthesize(STORY, v)));
    expect(new Set(results.map((r) => r.durationMs)).size).toBe(1);
    expect(new Set(results.map((r) => r.audio.toString('base64'))).size).toBe(3);
    const pitches = results.map((r) => pitchOf(r.audio));
    for (const pitch of pitches) {
      expect(pitch).toBeGreaterThan(60);
      expect(pitch).toBeLessThan(450);
    }
    expect(Math.abs(pitches[0]! - pitches[1]!)).toBeGreaterThan(5);
    expect(Math.abs(pitches[0]! - pitches[2]!)).toBeGreaterThan(5);
  });

  it('is deterministic: the same text and voice make the same bytes', async () => {
    const a = await local.synthesize(STORY, alloy);
    const b = await new LocalSpeechSynthesizer().synthesize(STORY, alloy);
    expect(b.audio.equals(a.audio)).toBe(true);
  });

  it('reads scripts without vowels or spaces too', async () => {
    const { durationMs } = await local.synthesize('灯台の上で、ミラは待っていた。', alloy);
    expect(durationMs).toBeGreaterThan(2000);
    expect(durationMs).toBeLessThan(6000);
  });

  it('refuses a stock voice it does not have, with the ones it has', async () => {
    const failure = await local.synthesize('Hello.', { kind: 'STOCK', stockVoice: 'Rachel' }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(ProviderFailed);
    expect(failure).toMatchObject({ reason: 'REFUSED', message: expect.stringMatching(/no stock voice "Rachel".*alloy, ash/) });
  });

  it('rejects texts the contract rules out: nothing to say, or longer than maxChars', async () => {
    await expect(local.synthesize(' \n * * * ', alloy)).rejects.toThrow(RangeError);
    await expect(new LocalSpeechSynthesizer({ maxChars: 10 }).synthesize('Eleven char', alloy)).rejects.toThrow(/at most 10/);
  });

  it('stops when the signal aborts', async () => {
    const controller = new AbortController();
    controller.abort(new Error('stopping'));
    await expect(local.synthesize(STORY, alloy, { signal: controller.signal })).rejects.toThrow('stopping');
  });
});
