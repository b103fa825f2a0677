/**
 * Fitting a story to a synthesizer and putting the narration back together: pure functions of
 * text and bytes, tested on their own (audio.unit.test.ts). A story longer than one call is
 * split here, each part is spoken by the adapter, and the parts are joined into one file.
 */
import { readMp3 } from './mp3.js';
import type { SynthesizedAudio } from './speech.js';
import { encodeWav, parseWav, pcmDurationMs, type ParsedWav } from './wav.js';

export { isMp3, mp3DurationMs, readMp3, type Mp3Frames } from './mp3.js';
export { isWav, MalformedAudio, repairWav, wavDurationMs } from './wav.js';

/**
 * Places a part may end, best first. Each pattern matches the separator; the cut goes after it.
 * A voice pauses naturally at a paragraph or a sentence, less so at a comma, and a part that
 * ends mid-sentence is read with the wrong intonation, so the coarser boundary wins whenever it
 * leaves a part at least half full.
 */
const BOUNDARIES: readonly RegExp[] = [
  /\n[^\S\n]*\n\s*/g, // a blank line: the author's paragraph break
  /\n\s*/g, // a line break: dialogue and verse often have no blank lines
  /[.!?…]+["'”’»)\]]*\s+/g, // a sentence end, with any closing quotes or brackets
  /[。！？]+[」』）]*/g, // scripts that end sentences without a space after
  /[,;:—–]["'”’»)\]]*\s+/g, // a clause
  /[、，；：]/g,
];
const SPACE = /\s+/g;
const SPACE_HERE = /\s+/y;

/**
 * Splits `text` into parts of at most `maxChars` UTF-16 units to be spoken one by one: at
 * paragraphs, else sentences, else clauses, else between words. A word is cut only when it is
 * itself longer than `maxChars` (a pasted URL), and then between graphemes, never inside a
 * surrogate pair or before a combining mark; scripts written without spaces are cut between
 * words as ICU finds them. Parts are trimmed, and lines with nothing to say (no letter or digit:
 * a "* * *" scene break) are left off their ends, so no part is only that. The parts hold every
 * word of the text, in order.
 */
export function splitForSpeech(text: string, maxChars: number): string[] {
  if (!Number.isInteger(maxChars) || maxChars < 1) throw new RangeError(`maxChars must be a positive integer, got ${maxChars}`);
  const parts: string[] = [];
  const keep = (part: string) => {
    const trimmed = part.replace(SILENT_LINES_AT_END, '').trim();
    if (SAYABLE.test(trimmed)) parts.push(trimmed);
  };
  let start = skipSilence(text, 0);
  while (text.length - start > maxChars) {
    const window = text.slice(start, start + maxChars + 1);
    const end = start + cutLength(window, maxChars);
    keep(text.slice(start, end));
    start = skipSilence(text, end);
  }
  if (start < text.length) keep(text.slice(start));
  return parts;
}

const SAYABLE = /[\p{L}\p{N}]/u;
const SILENT_LINES_AT_END = /(?:\n[^\p{L}\p{N}\n]*)+$/u;

/** Past whitespace, and past whole lines with nothing to say, so that no part starts with them. */
function skipSilence(text: string, from: number): number {
  for (;;) {
    SPACE_HERE.lastIndex = from;
    if (SPACE_HERE.test(text)) from = SPACE_HERE.lastIndex;
    const lineEnd = text.indexOf('\n', from);
    const line = text.slice(from, lineEnd === -1 ? text.length : lineEnd);
    if (SAYABLE.test(line) || lineEnd === -1) return from;
    from = lineEnd;
  }
}

/** How long the next part is, given `maxChars + 1` characters of text (the extra one shows whether a separator starts right at the limit). */
function cutLength(window: string, maxChars: number): number {
  for (const minChars of [Math.ceil(maxChars / 2), 1]) {
    // The second time round anywhere will do, however early: a short part is better than a word cut in two.
    for (const boundary of [...BOUNDARIES, SPACE]) {
      const end = lastBoundary(window, boundary, maxChars, minChars);
      if (end > 0) return end;
    }
  }
  return wordCut(window, maxChars) || graphemeCut(window, maxChars);
}

function lastBoundary(window: string, boundary: RegExp, maxChars: number, minChars: number): number {
  let best = -1;
  for (const match of window.matchAll(boundary)) {
    // Whitespace past the limit may be left for the next part; punctuation may not.
    if (match.index + match[0].trimEnd().length > maxChars) break;
    const end = Math.min(match.index + match[0].length, maxChars);
    if (end >= minChars) best = end;
  }
  return best;
}

const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });
const wordSegments = new Intl.Segmenter(undefined, { granularity: 'word' });

/**
 * The last word boundary within the limit, as ICU finds them in text without spaces (Chinese,
 * Japanese, Thai; a long URL). Punctuation stays with the word before it. 0 when there is none.
 */
function wordCut(window: string, maxChars: number): number {
  let cut = 0;
  for (const { index, segment } of wordSegments.segment(window)) {
    if (index > maxChars) break;
    if (index > 0 && !/^\p{P}/u.test(segment)) cut = index;
  }
  return cut;
}

/** The last grapheme boundary within the limit: no half emoji, no accent torn from its letter. */
function graphemeCut(window: string, maxChars: number): number {
  let cut = 0;
  for (const { index } of graphemes.segment(window)) {
    if (index > maxChars) break;
    cut = index;
  }
  if (cut > 0) return cut;
  // One grapheme longer than the limit (a flood of combining marks): at least keep pairs whole.
  const code = window.charCodeAt(maxChars - 1);
  return code >= 0xd800 && code <= 0xdbff && maxChars > 1 ? maxChars - 1 : maxChars;
}

/**
 * One file from the parts of a narration, in order. WAV parts must share one sample format;
 * their samples are concatenated under one header, and the first INFO tags found are kept (so
 * local speech still says it is local). MP3 parts lose their ID3 tags and Xing/Info frames,
 * which describe one part only, and their frames are concatenated: a valid stream of the whole.
 * Throws RangeError for no parts, mixed formats or mismatched sample formats, and
 * MalformedAudio for a part that is not what it claims to be.
 */
export function joinAudio(parts: SynthesizedAudio[]): SynthesizedAudio {
  const [first] = parts;
  if (!first) throw new RangeError('joinAudio: no parts to join');
  const formats = new Set(parts.map((p) => p.format));
  if (formats.size > 1) throw new RangeError(`joinAudio: cannot join ${[...formats].join(' and ')} parts into one file`);
  return first.format === 'wav' ? joinWav(parts) : joinMp3(parts);
}

function joinWav(parts: SynthesizedAudio[]): SynthesizedAudio {
  const wavs = parts.map((p) => parseWav(p.audio));
  const base = wavs[0]!;
  wavs.forEach((wav, i) => {
    if (!sameFormat(base, wav)) {
      throw new RangeError(`joinAudio: part ${i + 1} is ${describeFormat(wav)}, part 1 is ${describeFormat(base)}`);
    }
  });
  const data = Buffer.concat(wavs.map((w) => w.data));
  const info = wavs.find((w) => w.info.length > 0)?.info ?? [];
  return { audio: encodeWav(base.fmt, data, info), format: 'wav', durationMs: pcmDurationMs(base.format, data.length) };
}

function sameFormat(a: ParsedWav, b: ParsedWav): boolean {
  const x = a.format;
  const y = b.format;
  return x.formatTag === y.formatTag && x.channels === y.channels && x.sampleRate === y.sampleRate && x.bitsPerSample === y.bitsPerSample;
}

function describeFormat({ format }: ParsedWav): string {
  return `${format.sampleRate} Hz, ${format.bitsPerSample}-bit, ${format.channels} channel${format.channels === 1 ? '' : 's'}`;
}

function joinMp3(parts: SynthesizedAudio[]): SynthesizedAudio {
  const mp3s = parts.map((p) => readMp3(p.audio));
  const base = mp3s[0]!;
  mp3s.forEach((mp3, i) => {
    // A decoder set up for one rate plays frames of another too fast or too slow, or stops.
    if (mp3.sampleRate !== base.sampleRate || mp3.channels !== base.channels) {
      throw new RangeError(`joinAudio: part ${i + 1} is ${mp3.sampleRate} Hz with ${mp3.channels} channel(s), part 1 is ${base.sampleRate} Hz with ${base.channels}`);
    }
  });
  return {
    audio: Buffer.concat(mp3s.map((m) => m.frames)),
    format: 'mp3',
    durationMs: mp3s.reduce((sum, m) => sum + m.durationMs, 0),
  };
}
