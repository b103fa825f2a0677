import { describe, expect, it } from 'vitest';
import { buildPrompt } from './prompt.js';
import { PROMPT_MAX_CHARS } from './providers/provider.js';

const source = {
  title: 'The Lighthouse',
  summary: 'A keeper and a ferryman save a lost ship on a winter night.',
  genre: 'adventure',
  characters: [
    { name: 'Mira', description: 'the lighthouse keeper' },
    { name: 'Old Tom', description: 'a ferryman who laughs at storms' },
  ],
  emotions: [
    { label: 'fear', intensity: 0.4 },
    { label: 'trust', intensity: 0.9 },
    { label: 'joy', intensity: 0.1 },
    { label: 'anticipation', intensity: 0.6 },
  ],
  opening: 'Mira kept the lighthouse. She climbed the steps every night. Then one night the lamp went dark.',
};

describe('buildPrompt', () => {
  it('says what, who, how it feels and how it looks, strongest emotions first', () => {
    const prompt = buildPrompt(source, 'watercolor');
    expect(prompt).toBe(
      'A cinematic adventure short film of the story "The Lighthouse". A keeper and a ferryman save a lost ship on a winter night. ' +
        'Characters: Mira (the lighthouse keeper); Old Tom (a ferryman who laughs at storms). Mood: trust, anticipation, fear. Visual style: watercolor.',
    );
  });

  it('falls back on the story\'s opening without an analysis', () => {
    const prompt = buildPrompt({ ...source, summary: null, genre: null, characters: [], emotions: [] }, null);
    expect(prompt).toBe('A cinematic short film of the story "The Lighthouse". Mira kept the lighthouse. She climbed the steps every night.');
  });

  it('fits every provider\'s limit, cut at a word', () => {
    const long = buildPrompt({ ...source, summary: 'word '.repeat(400) }, 'style');
    expect(long.length).toBeLessThanOrEqual(PROMPT_MAX_CHARS);
    expect(long.endsWith('word…')).toBe(true);
  });
});
