/**
 * The offline adapter of the speech port: no model, no network, no randomness, no clock. It
 * "reads" a text as soft tones, one per syllable, at about 150 words a minute with pauses at
 * commas, sentences and paragraphs, so a narration has the length and rhythm the text would
 * have and every flow built on audio (joining, storage, playback, timing) works without an API
 * key. Each voice gets its own pitch; the file says it is local in its INFO tags.
 */
import { checkSpeakable, describeVoice, ProviderFailed, STOCK_VOICES, type NarrationVoice, type SpeechSynthesizer, type SynthesizedAudio } from './speech.js';
import { encodeWav, infoList, pcmDurationMs, pcmFormatChunk } from './wav.js';

export const LOCAL_SPEECH_SOFTWARE = 'Storyloom local speech (offline, not a real voice)';
export const LOCAL_SAMPLE_RATE = 22_050;
/** What OpenAI TTS takes in one call, so local narration is split the way real narration is. */
export const LOCAL_SPEECH_MAX_CHARS = 4096;

// Timing, in milliseconds. A syllable and its share of the gaps average out near 150 words a
// minute for English prose (about 1.4 syllables a word), the pace of an audiobook narrator.
const SYLLABLE_MS = 180;
const SYLLABLE_GAP_MS = 30;
const WORD_GAP_MS = 120;
const CLAUSE_PAUSE_MS = 220;
const SENTENCE_PAUSE_MS = 450;
const PARAGRAPH_PAUSE_MS = 750;
const EDGE_SILENCE_MS = 150;
const MAX_SYLLABLES_PER_WORD = 12;
// A raised-cosine fade: a tone that starts or stops at full amplitude clicks.
const ATTACK_MS = 12;
const RELEASE_MS = 25;
const AMPLITUDE = 0.2 * 32767;

type Step = { tone: false; ms: number } | { tone: true; ms: number; hz: number };

const TOKENS = /([\p{L}\p{M}\p{N}]+(?:['’-][\p{L}\p{M}\p{N}]+)*)|(\n[^\S\n]*\n)|([.!?…。！？]+)|([,;:—–、，；：])/gu;
const SYLLABIC_SCRIPT = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]/u;

export class LocalSpeechSynthesizer implements SpeechSynthesizer {
  readonly name = 'local';
  readonly maxChars: number;
  readonly stockVoices: readonly string[] = STOCK_VOICES;

  constructor(options: { maxChars?: number } = {}) {
    this.maxChars = options.maxChars ?? LOCAL_SPEECH_MAX_CHARS;
    if (!Number.isInteger(this.maxChars) || this.maxChars < 1) throw new RangeError('LocalSpeechSynthesizer: maxChars must be a positive integer');
  }

  async synthesize(text: string, voice: NarrationVoice, options: { signal?: AbortSignal } = {}): Promise<SynthesizedAudio> {
    const { signal } = options;
    signal?.throwIfAborted();
    checkSpeakable('LocalSpeechSynthesizer', text, this.maxChars);
    // Strict like the real thing: a voice name that only works offline would fail in production.
    if (voice.kind === 'STOCK' && !this.stockVoices.includes(voice.stockVoice)) {
      throw new ProviderFailed('REFUSED', `Local speech has no ${describeVoice(voice)}; it has ${this.stockVoices.join(', ')}.`);
    }
    const key = voice.kind === 'STOCK' ? voice.stockVoice : voice.providerVoiceId;
    const pcm = await render(plan(text, basePitch(key)), signal);
    const fmt = pcmFormatChunk({ channels: 1, sampleRate: LOCAL_SAMPLE_RATE, bitsPerSample: 16 });
    const info = infoList({ ISFT: LOCAL_SPEECH_SOFTWARE, ICMT: `${describeVoice(voice)}, tones standing in for speech` });
    return { audio: encodeWav(fmt, pcm, [info]), format: 'wav', durationMs: pcmDurationMs({ blockAlign: 2, sampleRate: LOCAL_SAMPLE_RATE }, pcm.length) };
  }
}

/** 32-bit FNV-1a: a stable hash without crypto, the same on every machine. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return hash;
}

/** A speaking pitch between 95 Hz (a low male voice) and 250 Hz (a high female one). */
function basePitch(voiceKey: string): number {
  return 95 * 2 ** (((fnv1a(voiceKey) % 1000) / 1000) * Math.log2(250 / 95));
}

function semitones(hz: number, steps: number): number {
  return hz * 2 ** (steps / 12);
}

/** Syllables, roughly: vowel groups in Latin-like words, characters in syllabic scripts, digits one each. */
function syllablesOf(word: string): string[] {
  const letters = [...word];
  let count: number;
  if (SYLLABIC_SCRIPT.test(word)) count = letters.length;
  else if (/^\p{N}+$/u.test(word)) count = letters.length;
  else {
    const plain = word.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase();
    const vowels = plain.match(/[aeiouy]+/g)?.length ?? 0;
    count = /[a-z]/.test(plain) ? vowels : Math.ceil(letters.length / 2.5);
  }
  count = Math.min(MAX_SYLLABLES_PER_WORD, Math.max(1, count));
  return Array.from({ length: count }, (_, i) => letters.slice(Math.floor((i * letters.length) / count), Math.floor(((i + 1) * letters.length) / count)).join(''));
}

/** The score: tones and rests. Pitch follows the letters, drifts down through a sentence and rises at a question. */
function plan(text: string, base: number): Step[] {
  const steps: Step[] = [{ tone: false, ms: EDGE_SILENCE_MS }];
  // Pauses do not add up: a comma after a word lengthens the gap after it, it does not follow it.
  const rest = (ms: number) => {
    const last = steps.at(-1)!;
    if (!last.tone) last.ms = Math.max(last.ms, ms);
    else steps.push({ tone: false, ms });
  };
  const matches = [...text.matchAll(TOKENS)];
  let wordInSentence = 0;
  for (const [i, match] of matches.entries()) {
    const [, word, paragraph, stop, clause] = match;
    if (word) {
      const closesQuestion = matches[i + 1]?.[3]?.includes('?') ?? false;
      const syllables = syllablesOf(word);
      for (const [s, syllable] of syllables.entries()) {
        const shade = (fnv1a(syllable.toLowerCase()) % 9) - 4; // -4..+4 semitones
        const drift = -Math.min(3, wordInSentence * 0.2);
        const rise = closesQuestion && s === syllables.length - 1 ? 4 : 0;
        if (s > 0) rest(SYLLABLE_GAP_MS);
        steps.push({ tone: true, ms: SYLLABLE_MS, hz: semitones(base, shade + drift + rise) });
      }
      rest(WORD_GAP_MS);
      wordInSentence++;
    } else if (paragraph) {
      rest(PARAGRAPH_PAUSE_MS);
      wordInSentence = 0;
    } else if (stop) {
      rest(SENTENCE_PAUSE_MS);
      wordInSentence = 0;
    } else if (clause) {
      rest(CLAUSE_PAUSE_MS);
    }
  }
  rest(EDGE_SILENCE_MS);
  return steps;
}

const samplesIn = (ms: number) => Math.round((ms * LOCAL_SAMPLE_RATE) / 1000);

/** 16-bit little-endian mono PCM. */
async function render(steps: Step[], signal: AbortSignal | undefined): Promise<Buffer> {
  const total = steps.reduce((sum, step) => sum + samplesIn(step.ms), 0);
  const pcm = Buffer.alloc(total * 2);
  // A story repeats a few hundred pitches thousands of times: each tone is computed once.
  const tones = new Map<string, Buffer>();
  let at = 0;
  let sinceBreath = 0;
  for (const step of steps) {
    const n = samplesIn(step.ms);
    if (step.tone) {
      const hz = Math.round(step.hz * 100) / 100;
      let samples = tones.get(`${hz}/${n}`);
      if (!samples) tones.set(`${hz}/${n}`, (samples = tone(hz, n)));
      samples.copy(pcm, at * 2);
    }
    at += n;
    sinceBreath += n;
    // Long texts take a while to render: give the event loop a turn now and then.
    if (sinceBreath >= LOCAL_SAMPLE_RATE * 30) {
      sinceBreath = 0;
      await new Promise<void>((resolve) => setImmediate(resolve));
      signal?.throwIfAborted();
    }
  }
  return pcm;
}

function tone(hz: number, n: number): Buffer {
  const samples = Buffer.alloc(n * 2);
  const attack = samplesIn(ATTACK_MS);
  const release = samplesIn(RELEASE_MS);
  const w = (2 * Math.PI * hz) / LOCAL_SAMPLE_RATE;
  for (let k = 0; k < n; k++) {
    const fade = k < attack ? (1 - Math.cos((Math.PI * k) / attack)) / 2 : k >= n - release ? (1 - Math.cos((Math.PI * (n - 1 - k)) / release)) / 2 : 1;
    // A fundamental with two weaker harmonics: closer to a voiced vowel than a bare sine.
    const wave = (Math.sin(w * k) + 0.35 * Math.sin(2 * w * k) + 0.15 * Math.sin(3 * w * k)) / 1.5;
    samples.writeInt16LE(Math.round(AMPLITUDE * fade * wave), k * 2);
  }
  return samples;
}
