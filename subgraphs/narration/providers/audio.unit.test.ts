import { describe, expect, it } from 'vitest';
import { id3v1Tag, id3v2Tag, mp3Bytes, mp3Frame, mp3FramesMs } from '../../../test/fakes/elevenlabs.js';
import { isMp3, joinAudio, MalformedAudio, mp3DurationMs, readMp3, repairWav, splitForSpeech, wavDurationMs } from './audio.js';
import { LOCAL_SPEECH_SOFTWARE, LocalSpeechSynthesizer } from './local-speech.js';
import type { SynthesizedAudio } from './speech.js';
import { encodeWav, infoList, parseWav, pcmFormatChunk, readInfo } from './wav.js';

/** Words as a listener hears them: runs of letters and digits. */
const words = (text: string) => text.match(/[\p{L}\p{M}\p{N}]+/gu) ?? [];

/** A small deterministic generator, so the property checks below are the same on every run. */
function* lcg(seed: number): Generator<number> {
  let x = seed >>> 0;
  for (;;) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    yield x / 2 ** 32;
  }
}

function expectValidSplit(text: string, maxChars: number, parts: string[]) {
  for (const part of parts) {
    expect(part.length).toBeGreaterThan(0);
    expect(part.length).toBeLessThanOrEqual(maxChars);
    expect(part).toBe(part.trim());
    expect(part).toMatch(/[\p{L}\p{N}]/u);
    // A part never ends on half a surrogate pair, and never starts on the other half.
    expect(part.charCodeAt(part.length - 1) & 0xfc00).not.toBe(0xd800);
    expect(part.charCodeAt(0) & 0xfc00).not.toBe(0xdc00);
  }
  expect(words(parts.join(' '))).toEqual(words(text));
}

describe('splitForSpeech', () => {
  it('keeps a text that fits in one part, trimmed', () => {
    expect(splitForSpeech('  Once upon a time.\n', 100)).toEqual(['Once upon a time.']);
  });

  it('cuts at paragraphs first', () => {
    const paragraphs = ['Mira climbed the stairs to the lamp room.', 'Reyes was waiting with a story.', 'The sea was loud that night.'];
    const parts = splitForSpeech(paragraphs.join('\n\n'), 80);
    expect(parts).toEqual([`${paragraphs[0]}\n\n${paragraphs[1]}`, paragraphs[2]]);
  });

  it('cuts a paragraph that is too long at sentence ends, closing quotes included', () => {
    const text = 'The storm came back. “Keep the lamp lit!” Reyes shouted. Mira ran up the stairs. The gulls circled below.';
    const parts = splitForSpeech(text, 60);
    expectValidSplit(text, 60, parts);
    expect(parts).toEqual(['The storm came back. “Keep the lamp lit!” Reyes shouted.', 'Mira ran up the stairs. The gulls circled below.']);
  });

  it('cuts a sentence that is too long at a clause, then between words, never inside one', () => {
    const clauses = 'The sea rose, the keepers climbed, the lamp burned on and on and on';
    expect(splitForSpeech(clauses, 40)).toEqual(['The sea rose, the keepers climbed,', 'the lamp burned on and on and on']);

    const run = 'one two three four five six seven eight nine ten eleven twelve thirteen fourteen';
    const parts = splitForSpeech(run, 20);
    expectValidSplit(run, 20, parts);
    for (const part of parts) for (const word of part.split(' ')) expect(run.split(' ')).toContain(word);
  });

  it('moves a long word to the next part rather than cut it, even if the part stays short', () => {
    expect(splitForSpeech(`aaa bbb ${'x'.repeat(15)}`, 20)).toEqual(['aaa bbb', 'x'.repeat(15)]);
  });

  it('cuts a word longer than a part between graphemes: no half pair, no accent torn off', () => {
    const url = 'https://example.com/' + 'a'.repeat(50);
    const parts = splitForSpeech(url, 20);
    expect(parts.join('')).toBe(url);
    expect(parts.every((p) => p.length <= 20)).toBe(true);

    const astral = '𠮷'.repeat(15); // a letter outside the BMP: 30 UTF-16 units, no spaces
    const astralParts = splitForSpeech(astral, 7);
    expect(astralParts.join('')).toBe(astral);
    expect(astralParts.every((p) => [...p].every((c) => c === '𠮷'))).toBe(true);

    const accented = 'e\u0301'.repeat(10); // "é" as a letter and a combining mark
    const accentedParts = splitForSpeech(accented, 5);
    expect(accentedParts.join('')).toBe(accented);
    for (const part of accentedParts) expect(part.startsWith('\u0301')).toBe(false);
  });

  it('leaves out parts with nothing to say', () => {
    const text = 'The first night ended.\n\n* * *\n\n   \n\nThe second night began.';
    expect(splitForSpeech(text, 25)).toEqual(['The first night ended.', 'The second night began.']);
    expect(splitForSpeech(' \n\n \t ', 10)).toEqual([]);
    expect(splitForSpeech('', 10)).toEqual([]);
  });

  it('splits scripts without spaces at their sentence ends, else between words', () => {
    const text = '灯台の上で、ミラは待っていた。嵐が来た。レイエスは物語を話した。';
    const parts = splitForSpeech(text, 16);
    expect(parts).toEqual(['灯台の上で、ミラは待っていた。', '嵐が来た。', 'レイエスは物語を話した。']);

    const sentence = '彼女は灯台の階段をゆっくりと上っていった';
    const byWords = splitForSpeech(sentence, 8);
    expect(byWords.join('')).toBe(sentence);
    const icuWords = [...new Intl.Segmenter('ja', { granularity: 'word' }).segment(sentence)].map((s) => s.index);
    let at = 0;
    for (const part of byWords.slice(0, -1)) expect(icuWords).toContain((at += part.length));
  });

  it('holds every word of any text, in order, in parts no longer than asked', () => {
    const random = lcg(42);
    const next = () => random.next().value as number;
    const pieces = ['the', 'lamp', 'Mira', 'storm—', 'sea,', 'night.', 'why?', '“Run!”', '\n', '\n\n', '🌊', '𠮷', 'café', 'naïve', '——', '* * *', '   ', '灯台。', 'x'.repeat(30)];
    const letters = (text: string) => text.replace(/[^\p{L}\p{M}\p{N}]/gu, '');
    for (let round = 0; round < 300; round++) {
      const spaced = next() < 0.5;
      const text = Array.from({ length: 5 + Math.floor(next() * 120) }, () => pieces[Math.floor(next() * pieces.length)]).join(spaced ? ' ' : '');
      const maxChars = 5 + Math.floor(next() * 80);
      const parts = splitForSpeech(text, maxChars);
      for (const part of parts) expect(part.length).toBeLessThanOrEqual(maxChars);
      expect(letters(parts.join(''))).toBe(letters(text));
      // Between spaced words that fit a part, a cut only ever falls between words.
      if (spaced && maxChars >= 30) expectValidSplit(text, maxChars, parts);
    }
  });

  it('rejects a limit that is not a positive integer', () => {
    expect(() => splitForSpeech('text', 0)).toThrow(RangeError);
    expect(() => splitForSpeech('text', 1.5)).toThrow(RangeError);
  });
});

describe('WAV', () => {
  const local = new LocalSpeechSynthesizer();
  const speak = (text: string, stockVoice = 'alloy') => local.synthesize(text, { kind: 'STOCK', stockVoice });

  it('joins WAV parts into one file with correct sizes, the samples in order and the INFO tags kept', async () => {
    const a = await speak('Mira climbed the stairs.');
    const b = await speak('Reyes was waiting with a lamp.', 'echo');
    const joined = joinAudio([a, b]);

    expect(joined.format).toBe('wav');
    const audio = joined.audio;
    expect(audio.toString('latin1', 0, 4)).toBe('RIFF');
    expect(audio.readUInt32LE(4)).toBe(audio.length - 8);
    const parsed = parseWav(audio);
    expect(parsed.data).toEqual(Buffer.concat([parseWav(a.audio).data, parseWav(b.audio).data]));
    const dataAt = audio.indexOf('data', 12, 'latin1');
    expect(audio.readUInt32LE(dataAt + 4)).toBe(parsed.data.length);
    expect(dataAt + 8 + parsed.data.length).toBe(audio.length);
    expect(readInfo(parsed.info[0]!).ISFT).toBe(LOCAL_SPEECH_SOFTWARE);
    expect(joined.durationMs).toBe(wavDurationMs(audio));
    expect(Math.abs(joined.durationMs! - (a.durationMs! + b.durationMs!))).toBeLessThanOrEqual(1);
  });

  it('finds the chunks wherever they are: LIST before fmt, odd-sized chunks with their pad byte', () => {
    const fmt = pcmFormatChunk({ channels: 1, sampleRate: 16000, bitsPerSample: 16 });
    const data = Buffer.alloc(32000, 1); // one second
    const chunk = (id: string, body: Buffer) => {
      const header = Buffer.alloc(8);
      header.write(id, 0, 'latin1');
      header.writeUInt32LE(body.length, 4);
      return Buffer.concat([header, body, Buffer.alloc(body.length % 2)]);
    };
    const body = Buffer.concat([Buffer.from('WAVE'), chunk('LIST', infoList({ INAM: 'x' })), chunk('JUNK', Buffer.alloc(3)), chunk('fmt ', fmt), chunk('data', data)]);
    const riff = Buffer.concat([Buffer.from('RIFF'), Buffer.alloc(4), body]);
    riff.writeUInt32LE(riff.length - 8, 4);

    const parsed = parseWav(riff);
    expect(parsed.format).toMatchObject({ formatTag: 1, channels: 1, sampleRate: 16000, bitsPerSample: 16, blockAlign: 2 });
    expect(parsed.data).toEqual(data);
    expect(readInfo(parsed.info[0]!)).toEqual({ INAM: 'x' });
    expect(wavDurationMs(riff)).toBe(1000);
  });

  it('reads a streamed WAV whose sizes are placeholders, and writes the real ones back', () => {
    const data = Buffer.alloc(48000, 2); // one second at 24 kHz
    const streamed = encodeWav(pcmFormatChunk({ channels: 1, sampleRate: 24000, bitsPerSample: 16 }), data);
    streamed.writeUInt32LE(0xffffffff, 4);
    streamed.writeUInt32LE(0xffffffff, 40);

    expect(wavDurationMs(streamed)).toBe(1000);
    const repaired = repairWav(streamed);
    expect(repaired.readUInt32LE(4)).toBe(repaired.length - 8);
    expect(repaired.readUInt32LE(40)).toBe(48000);
    expect(parseWav(repaired).data).toEqual(data);
  });

  it('drops a half sample frame at the end of a cut-off file', () => {
    const wav = encodeWav(pcmFormatChunk({ channels: 1, sampleRate: 8000, bitsPerSample: 16 }), Buffer.alloc(100));
    expect(parseWav(wav.subarray(0, wav.length - 1)).data.length).toBe(98);
  });

  it('refuses to join WAVs of different sample formats', async () => {
    const a = await speak('Hello there.');
    const other = encodeWav(pcmFormatChunk({ channels: 1, sampleRate: 24000, bitsPerSample: 16 }), Buffer.alloc(480));
    expect(() => joinAudio([a, { audio: other, format: 'wav', durationMs: 10 }])).toThrow(/part 2 is 24000 Hz.*part 1 is 22050 Hz/);
  });

  it('says what is wrong with bytes that are not a WAV', () => {
    expect(() => parseWav(Buffer.from('ID3 not a wave'))).toThrow(MalformedAudio);
    const noData = encodeWav(pcmFormatChunk({ channels: 1, sampleRate: 8000, bitsPerSample: 16 }), Buffer.alloc(0)).subarray(0, 36);
    expect(() => parseWav(noData)).toThrow(/no data chunk/);
  });
});

describe('MP3', () => {
  const part = (audio: Buffer): SynthesizedAudio => ({ audio, format: 'mp3', durationMs: mp3DurationMs(audio) });

  it('builds frames a reader can walk: MPEG-1 at 44.1 kHz and MPEG-2 at 24 kHz', () => {
    expect(mp3Frame()).toHaveLength(417); // 144 × 128000 / 44100
    expect(mp3Frame({ sampleRate: 24000, bitrateKbps: 64 })).toHaveLength(192); // 72 × 64000 / 24000
    expect(mp3DurationMs(mp3Bytes({ frames: 100 }))).toBe(mp3FramesMs(100)); // 2612 ms
    expect(mp3DurationMs(mp3Bytes({ frames: 125, sampleRate: 24000, bitrateKbps: 64 }))).toBe(3000);
    expect(readMp3(mp3Bytes({ frames: 3, mono: false }))).toMatchObject({ frameCount: 3, channels: 2, sampleRate: 44100 });
  });

  it('joins parts into one stream: tags and Info frames out, every audio frame in order', () => {
    const a = mp3Bytes({ frames: 10, fill: Buffer.from('first'), id3v2: true, xing: true });
    const b = mp3Bytes({ frames: 20, fill: Buffer.from('second'), id3v2: id3v2Tag('Lavf', 'TSSE', 64), id3v1: true });
    const c = mp3Bytes({ frames: 5, fill: Buffer.from('third') });
    const joined = joinAudio([part(a), part(b), part(c)]);

    expect(joined.format).toBe('mp3');
    expect(joined.audio).toEqual(
      Buffer.concat([
        mp3Bytes({ frames: 10, fill: Buffer.from('first') }),
        mp3Bytes({ frames: 20, fill: Buffer.from('second') }),
        mp3Bytes({ frames: 5, fill: Buffer.from('third') }),
      ]),
    );
    expect(joined.audio.includes('ID3')).toBe(false);
    expect(joined.audio.includes('TAG')).toBe(false);
    expect(joined.audio.includes('Info')).toBe(false);
    expect(readMp3(joined.audio).frameCount).toBe(35);
    expect(joined.durationMs).toBe(mp3FramesMs(10) + mp3FramesMs(20) + mp3FramesMs(5));
  });

  it('does not count the Info frame as audio', () => {
    expect(mp3DurationMs(mp3Bytes({ frames: 10, xing: true }))).toBe(mp3FramesMs(10));
  });

  it('drops a frame cut off by the end of the file', () => {
    const whole = mp3Bytes({ frames: 4 });
    const cut = whole.subarray(0, whole.length - 100);
    expect(readMp3(cut).frameCount).toBe(3);
  });

  it('finds the first frame after zero padding that follows a tag', () => {
    const padded = Buffer.concat([id3v2Tag(), Buffer.alloc(37), mp3Bytes({ frames: 3 })]);
    expect(readMp3(padded).frameCount).toBe(3);
  });

  it('refuses what is not MP3, and bytes that are not frames after them', () => {
    expect(isMp3(Buffer.from('<html>Bad gateway</html>'))).toBe(false);
    expect(mp3DurationMs(Buffer.from('RIFF....WAVE'))).toBeNull();
    expect(() => readMp3(Buffer.concat([mp3Bytes({ frames: 3 }), Buffer.from('garbage that is not a tag')]))).toThrow(MalformedAudio);
    expect(readMp3(Buffer.concat([mp3Bytes({ frames: 3 }), id3v1Tag()])).frameCount).toBe(3);
  });

  it('refuses to join MP3s of different sample rates', () => {
    const a = part(mp3Bytes({ frames: 2 }));
    const b = part(mp3Bytes({ frames: 2, sampleRate: 24000, bitrateKbps: 64 }));
    expect(() => joinAudio([a, b])).toThrow(/part 2 is 24000 Hz/);
  });
});

describe('joinAudio', () => {
  it('refuses mixed formats and an empty list', async () => {
    const wav = await new LocalSpeechSynthesizer().synthesize('Hello.', { kind: 'STOCK', stockVoice: 'nova' });
    const mp3: SynthesizedAudio = { audio: mp3Bytes({ frames: 2 }), format: 'mp3', durationMs: 52 };
    expect(() => joinAudio([wav, mp3])).toThrow(/cannot join wav and mp3/);
    expect(() => joinAudio([])).toThrow(RangeError);
  });

  it('returns one part as a valid file of the same audio', async () => {
    const wav = await new LocalSpeechSynthesizer().synthesize('Hello.', { kind: 'STOCK', stockVoice: 'nova' });
    const joined = joinAudio([wav]);
    expect(parseWav(joined.audio).data).toEqual(parseWav(wav.audio).data);
    expect(joined.durationMs).toBe(wav.durationMs);
  });
});
