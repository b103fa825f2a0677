import { describe, expect, it } from 'vitest';
import type { AnalysedCharacter } from './analyser.js';
import { mergePartAnalyses, splitForModel, type PartAnalysis } from './chunking.js';

/** Every split must be lossless and within the limit, whatever else a test checks. */
function split(text: string, maxChars: number): string[] {
  const parts = splitForModel(text, maxChars);
  expect(parts.join('')).toBe(text);
  for (const part of parts) {
    expect(part.length).toBeGreaterThan(0);
    expect(part.length).toBeLessThanOrEqual(maxChars);
  }
  return parts;
}

describe('splitForModel', () => {
  it('returns a text that fits as one part, and nothing for an empty text', () => {
    expect(split('Once upon a time.', 100)).toEqual(['Once upon a time.']);
    expect(split('exactly ten', 11)).toEqual(['exactly ten']);
    expect(split('', 10)).toEqual([]);
  });

  it('cuts at paragraph breaks, keeping the break with the paragraph before it', () => {
    const a = 'Mira left the village at dawn.';
    const b = 'The road was long and the rain was cold.';
    const c = 'At the tower, Reyes waited.';
    const parts = split(`${a}\n\n${b}\n\n${c}`, 50);
    expect(parts).toEqual([`${a}\n\n`, `${b}\n\n`, c]);
  });

  it('packs several paragraphs into a part while they fit', () => {
    const paragraph = 'Short one.';
    const text = Array.from({ length: 9 }, () => paragraph).join('\n\n');
    const parts = split(text, 40);
    expect(parts[0]).toBe(`${paragraph}\n\n${paragraph}\n\n${paragraph}\n\n`);
    expect(parts.every((p) => p.trim().endsWith('.'))).toBe(true);
  });

  it('prefers a sentence end to a paragraph break that would leave a part under half full', () => {
    const text = `Hi.\n\n${'The wind rose. '.repeat(10)}`;
    const parts = split(text, 60);
    expect(parts[0]!.length).toBeGreaterThanOrEqual(30);
    expect(parts[0]).toMatch(/rose\. $/);
  });

  it('falls back to sentence ends inside a long paragraph', () => {
    const text = 'The ship sailed. "Where to?" she asked! Nobody knew… The sea was grey. It rained.';
    const parts = split(text, 40);
    expect(parts.length).toBeGreaterThan(1);
    for (const part of parts.slice(0, -1)) expect(part).toMatch(/[.!?…]["”]?\s+$/);
  });

  it('keeps a closing quote with its sentence', () => {
    const text = `${'a'.repeat(20)} said "Go now." ${'b'.repeat(30)}`;
    const parts = split(text, 40);
    expect(parts[0]).toBe(`${'a'.repeat(20)} said "Go now." `);
  });

  it('cuts between sentences in scripts without spaces', () => {
    const sentence = '她走进了森林。';
    const parts = split(sentence.repeat(6), 20);
    for (const part of parts) expect(part.endsWith('。')).toBe(true);
  });

  it('cuts between words when a sentence is longer than a part', () => {
    const text = Array.from({ length: 30 }, (_, i) => `word${i}`).join(' ');
    const parts = split(text, 25);
    parts.slice(1).forEach((part, i) => expect(`${parts[i]!.at(-1)}${part[0]}`).toMatch(/^(?:\d |\sw)$/));
    expect(parts.flatMap((p) => p.trim().split(' '))).toEqual(text.split(' '));
  });

  it('uses whitespace just past the limit rather than cutting the word before it', () => {
    // The 10th character is the end of a word and the 11th a space: the cut lands between them.
    expect(split('abcdefghij klm', 10)).toEqual(['abcdefghij', ' klm']);
  });

  it('never moves a sentence stop into the next part to make room', () => {
    // The stop would be the 11th character: the cut falls back to the space before it.
    const parts = split('abcdef ghij. klm', 10);
    expect(parts[0]).toBe('abcdef ');
  });

  it('cuts hard when there is no boundary at all, never inside a surrogate pair', () => {
    expect(split('x'.repeat(25), 10)).toEqual(['x'.repeat(10), 'x'.repeat(10), 'x'.repeat(5)]);
    const emoji = '😀'.repeat(10); // 20 UTF-16 units
    const parts = split(emoji, 5);
    for (const part of parts) expect(part).toMatch(/^(?:😀)+$/u);
  });

  it('covers a long story in parts close to the limit', () => {
    const paragraph = 'Mira walked on. The wind was cold and the path was steep, but she did not stop. ';
    const text = Array.from({ length: 60 }, (_, i) => `${paragraph.repeat(1 + (i % 4))}\n\n`).join('');
    const parts = split(text, 1000);
    for (const part of parts.slice(0, -1)) expect(part.length).toBeGreaterThanOrEqual(500);
    expect(parts.length).toBeLessThanOrEqual(Math.ceil(text.length / 500));
  });

  it('rejects a limit that is not a positive integer', () => {
    expect(() => splitForModel('text', 0)).toThrow(RangeError);
    expect(() => splitForModel('text', 2.5)).toThrow(RangeError);
  });
});

const character = (name: string, description = `${name}.`, traits: string[] = []): AnalysedCharacter => ({ name, description, traits });
const part = (overrides: Partial<PartAnalysis>): PartAnalysis => ({ genre: 'drama', characters: [], emotions: [], weight: 100, ...overrides });

describe('mergePartAnalyses', () => {
  it('merges characters by name ignoring case and spacing, keeping the first spelling and description', () => {
    const { characters } = mergePartAnalyses([
      part({ characters: [character('Captain  Reyes', '', ['Stern']), character('Mira', 'A young keeper.', ['brave'])] }),
      part({ characters: [character('captain reyes', 'The old captain.', ['stern', 'Kind ']), character('MIRA', 'Someone else entirely.', ['curious'])] }),
    ]);
    expect(characters).toEqual([
      { name: 'Captain Reyes', description: 'The old captain.', traits: ['stern', 'kind'] },
      { name: 'Mira', description: 'A young keeper.', traits: ['brave', 'curious'] },
    ]);
  });

  it('ranks characters by the number of parts they appear in, then by first appearance', () => {
    const { characters } = mergePartAnalyses([
      part({ characters: [character('Ada'), character('Bo'), character('Bo')] }),
      part({ characters: [character('Cy'), character('Bo')] }),
      part({ characters: [character('Cy'), character('Dee')] }),
    ]);
    // Bo's repeat within the first part does not count as another part.
    expect(characters.map((c) => c.name)).toEqual(['Bo', 'Cy', 'Ada', 'Dee']);
  });

  it('keeps at most 12 characters and 8 traits each, and drops nameless ones', () => {
    const many = Array.from({ length: 15 }, (_, i) => character(`C${i}`, '', Array.from({ length: 10 }, (_, t) => `t${t}`)));
    const { characters } = mergePartAnalyses([part({ characters: [character('  '), ...many] })]);
    expect(characters).toHaveLength(12);
    expect(characters[0]!.name).toBe('C0');
    expect(characters[0]!.traits).toHaveLength(8);
  });

  it('averages emotions weighted by part length, an omitted emotion counting as zero', () => {
    const { emotions } = mergePartAnalyses([
      part({ weight: 300, emotions: [{ label: 'fear', intensity: 0.8 }] }),
      part({ weight: 100, emotions: [{ label: 'joy', intensity: 1 }, { label: 'fear', intensity: 0.4 }] }),
    ]);
    expect(emotions).toEqual([
      { label: 'fear', intensity: 0.7 },
      { label: 'joy', intensity: 0.25 },
    ]);
  });

  it('clamps intensities to 0..1, keeps the first of a repeated label and drops zeros', () => {
    const { emotions } = mergePartAnalyses([
      part({
        emotions: [
          { label: 'anger', intensity: 3 },
          { label: 'anger', intensity: 0.1 },
          { label: 'trust', intensity: -1 },
          { label: 'joy', intensity: 0 },
          { label: 'surprise', intensity: 0.5 },
        ],
      }),
    ]);
    expect(emotions).toEqual([
      { label: 'anger', intensity: 1 },
      { label: 'surprise', intensity: 0.5 },
    ]);
  });

  it('orders equal intensities by the list of emotions, so the result is stable', () => {
    const { emotions } = mergePartAnalyses([part({ emotions: [{ label: 'anger', intensity: 0.5 }, { label: 'joy', intensity: 0.5 }] })]);
    expect(emotions.map((e) => e.label)).toEqual(['joy', 'anger']);
  });

  it('chooses the genre by a length-weighted vote, a tie going to the genre named first', () => {
    expect(mergePartAnalyses([part({ genre: 'horror', weight: 100 }), part({ genre: 'mystery', weight: 150 }), part({ genre: 'horror', weight: 100 })]).genre).toBe('horror');
    expect(mergePartAnalyses([part({ genre: 'horror', weight: 100 }), part({ genre: 'mystery', weight: 250 })]).genre).toBe('mystery');
    expect(mergePartAnalyses([part({ genre: 'romance', weight: 100 }), part({ genre: 'comedy', weight: 100 })]).genre).toBe('romance');
  });

  it('needs at least one part', () => {
    expect(() => mergePartAnalyses([])).toThrow(RangeError);
  });
});
