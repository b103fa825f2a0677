import { describe, expect, it } from 'vitest';
import { AnalysisFailed, EMOTIONS, GENRES, countWords, readingTimeMinutes, type AnalysisResult, type StoryText } from './analyser.js';
import { ALL_STORIES, CAFE, DRAGON, FUNERAL, LIBRARY, SPANISH, STARSHIP, WREN_LANE, type StoryFixture } from './fixtures/stories.js';
import { LOCAL_MAX_CHARS, LocalAnalyser } from './local.js';

const analyser = new LocalAnalyser();
const analyse = (content: string, title = '') => analyser.analyse({ title, content });
const namesIn = async (content: string) => (await analyse(content)).characters.map((c) => c.name);
const squash = (text: string) => text.replace(/\s+/g, ' ');
/** A passage of the analysis split back into sentences, to find each in the story. */
const sentencesOf = (text: string) => text.replace(/…$/, '').split(/(?<=[.!?]["”]?)\s+(?=["“]?\p{Lu})/u);

const results = new Map<StoryFixture, AnalysisResult>();
const resultOf = async (story: StoryFixture) => {
  if (!results.has(story)) results.set(story, await analyser.analyse(story));
  return results.get(story)!;
};

describe('LocalAnalyser on short stories', () => {
  it.each(ALL_STORIES.map((s) => [s.title, s] as const))('%s: names exactly the characters a reader would', async (_, story) => {
    const names = (await resultOf(story)).characters.map((c) => c.name);
    expect([...names].sort()).toEqual([...story.characters].sort());
  });

  it('ranks the protagonist first', async () => {
    expect((await resultOf(DRAGON)).characters[0]!.name).toBe('Mira');
    expect((await resultOf(STARSHIP)).characters[0]!.name).toBe('Captain Reyes');
    expect((await resultOf(LIBRARY)).characters[0]!.name).toBe('Detective Alvarez');
  });

  it.each(ALL_STORIES.map((s) => [s.title, s] as const))('%s: describes each character with sentences of the story about them', async (_, story) => {
    const text = squash(story.content);
    for (const character of (await resultOf(story)).characters) {
      expect(character.description.length).toBeGreaterThan(0);
      expect(character.description.length).toBeLessThanOrEqual(300);
      for (const sentence of sentencesOf(character.description)) expect(text, character.name).toContain(sentence);
      const nameWords = character.name.split(/[\s.]+/).filter((w) => /^\p{Lu}\p{Ll}/u.test(w));
      expect(nameWords.some((w) => character.description.includes(w)), character.name).toBe(true);
    }
  });

  it('picks the sentence that introduces a character over one where it only acts', async () => {
    const dragon = await resultOf(DRAGON);
    expect(dragon.characters.find((c) => c.name === 'Vask')!.description).toMatch(/^Vask was ancient and lonely\./);
    expect(dragon.characters.find((c) => c.name === 'Old Tom')!.description).toContain('Old Tom was stubborn and kind, a retired blacksmith');
  });

  it.each(ALL_STORIES.map((s) => [s.title, s] as const))('%s: finds the traits the text states', async (_, story) => {
    const characters = (await resultOf(story)).characters;
    for (const [name, traits] of Object.entries(story.traits)) {
      expect(characters.find((c) => c.name === name)?.traits, name).toEqual(expect.arrayContaining(traits));
    }
    for (const c of characters) {
      expect(c.traits.length).toBeLessThanOrEqual(5);
      for (const trait of c.traits) expect(trait).toMatch(/^[a-z-]+$/);
    }
  });

  it('takes no adjectives of things for traits ("old map", "warm cave")', async () => {
    const mira = (await resultOf(DRAGON)).characters.find((c) => c.name === 'Mira')!;
    expect(mira.traits).toEqual(['curious', 'brave']);
  });

  it.each(ALL_STORIES.map((s) => [s.title, s] as const))('%s: tells the genre', async (_, story) => {
    expect((await resultOf(story)).genre).toBe(story.genre);
  });

  it.each(ALL_STORIES.filter((s) => s.mood).map((s) => [s.title, s] as const))('%s: feels the dominant emotion', async (_, story) => {
    expect((await resultOf(story)).emotions[0]?.label).toBe(story.mood);
  });

  it('reports emotions as Plutchik labels, strongest first, 0..1 with two decimals', async () => {
    for (const story of ALL_STORIES) {
      const { emotions } = await resultOf(story);
      expect(emotions.length).toBeGreaterThan(0);
      expect(new Set(emotions.map((e) => e.label)).size).toBe(emotions.length);
      for (const e of emotions) {
        expect(EMOTIONS).toContain(e.label);
        expect(e.intensity).toBeGreaterThan(0);
        expect(e.intensity).toBeLessThanOrEqual(1);
        expect(Math.round(e.intensity * 100)).toBeCloseTo(e.intensity * 100, 6);
      }
      expect(emotions.map((e) => e.intensity)).toEqual([...emotions.map((e) => e.intensity)].sort((a, b) => b - a));
    }
    const sad = (await resultOf(FUNERAL)).emotions;
    expect(sad[0]!.intensity).toBeGreaterThan(0.8);
    expect(sad.find((e) => e.label === 'joy')?.intensity ?? 0).toBeLessThan(0.3);
  });

  it.each(ALL_STORIES.map((s) => [s.title, s] as const))('%s: summarises with 2 or 3 of its sentences, in story order', async (_, story) => {
    const { summary } = await resultOf(story);
    const text = squash(story.content);
    expect(summary.length).toBeLessThanOrEqual(600);
    const sentences = sentencesOf(summary);
    expect(sentences.length).toBeGreaterThanOrEqual(2);
    expect(sentences.length).toBeLessThanOrEqual(3);
    const positions = sentences.map((s) => text.indexOf(s));
    for (const p of positions) expect(p).toBeGreaterThanOrEqual(0);
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
  });

  it('opens the summary with the opening when it sets the scene', async () => {
    expect((await resultOf(FUNERAL)).summary).toMatch(/^The funeral was over by noon/);
    expect((await resultOf(STARSHIP)).summary).toMatch(/^The starship Meridian had been drifting/);
  });

  it('says it is local, and which algorithm', async () => {
    const result = await resultOf(CAFE);
    expect(result.provider).toBe('local');
    expect(result.model).toBe('storyloom-local-1');
    expect(result.notes).toEqual(['local analysis: heuristic, English lexicons']);
    expect(analyser.name).toBe('local');
    expect(GENRES).toContain(result.genre);
  });

  it('fits the reading time the worker derives from countWords', () => {
    for (const story of ALL_STORIES) {
      const words = countWords(story.content);
      expect(words, story.title).toBeGreaterThanOrEqual(150);
      expect(words, story.title).toBeLessThanOrEqual(600);
      expect(readingTimeMinutes(words)).toBe(Math.max(1, Math.round(words / 230)));
    }
    expect(readingTimeMinutes(countWords(DRAGON.content))).toBe(2);
    expect(readingTimeMinutes(countWords('Mira ran.'))).toBe(1);
    // Combining marks stay inside their word.
    expect(countWords('हिन्दी भाषा बहुत सुंदर है')).toBe(5);
    expect(countWords('cafe\u0301 au lait')).toBe(3);
  });

  it('gives the same result every time', async () => {
    for (const story of [DRAGON, WREN_LANE]) {
      const first = await new LocalAnalyser().analyse(story);
      const second = await new LocalAnalyser().analyse({ ...story });
      expect(second).toEqual(first);
      expect(JSON.stringify(second)).toBe(JSON.stringify(first));
    }
  });
});

describe('LocalAnalyser at the edges', () => {
  it('refuses a story without words as EMPTY_STORY', async () => {
    for (const content of ['', '   \n\t  \n', '— … !!! ???']) {
      const failure = await analyse(content).catch((e: unknown) => e);
      expect(failure).toBeInstanceOf(AnalysisFailed);
      expect((failure as AnalysisFailed).reason).toBe('EMPTY_STORY');
    }
  });

  it('stops when its signal aborts', async () => {
    const controller = new AbortController();
    controller.abort(new Error('shutting down'));
    await expect(analyser.analyse({ title: '', content: DRAGON.content }, { signal: controller.signal })).rejects.toThrow('shutting down');
  });

  it('analyses a 200,000-character story with bounded output', async () => {
    let content = '';
    for (let i = 0; content.length < 200_000; i++) content += `${ALL_STORIES[i % ALL_STORIES.length]!.content}\n\n`;
    content = content.slice(0, 200_000);
    const result = await analyse(content, 'Collected Stories');
    expect(result.characters.length).toBe(12);
    for (const c of result.characters) {
      expect(c.description.length).toBeLessThanOrEqual(300);
      expect(c.traits.length).toBeLessThanOrEqual(5);
    }
    const everyone = ALL_STORIES.flatMap((s) => s.characters);
    for (const c of result.characters) expect(everyone).toContain(c.name);
    expect(result.summary.length).toBeGreaterThan(0);
    expect(result.summary.length).toBeLessThanOrEqual(600);
    expect(result.emotions.length).toBeLessThanOrEqual(EMOTIONS.length);
    expect(result.notes).toEqual(['local analysis: heuristic, English lexicons']);
  });

  it('analyses only the first LOCAL_MAX_CHARS characters of a longer text, and says so', async () => {
    const content = `${'Then Mira walked on. '.repeat(Math.ceil(LOCAL_MAX_CHARS / 21))}Kade waved at Kade.`;
    const result = await analyse(content);
    expect(result.characters.map((c) => c.name)).toEqual(['Mira']);
    expect(result.notes).toHaveLength(2);
    expect(result.notes[1]).toMatch(/^analysed the first \d+ characters$/);
  });

  it('still finds names in a story that is not English, and says the rest is English-only', async () => {
    const result = await analyse(SPANISH.content, SPANISH.title);
    expect(result.characters.map((c) => c.name)).toEqual(SPANISH.characters);
    expect(result.emotions).toEqual([]);
    expect(result.notes[1]).toMatch(/does not look English/);
    expect(result.summary.length).toBeGreaterThan(0);
    // The author's language wins over the guess.
    const declared = await analyser.analyse({ title: '', content: DRAGON.content, language: 'de' });
    expect(declared.notes[1]).toMatch(/does not look English/);
    expect((await analyser.analyse({ title: '', content: DRAGON.content, language: 'en-GB' })).notes).toHaveLength(1);
  });

  it('defaults the genre of a story with no genre words by its mood', async () => {
    const calm = 'Sam and Lee talked for an hour. Sam smiled. Lee smiled back, happy and grateful. It had been a good day.';
    expect((await analyse(calm)).genre).toBe('slice-of-life');
    const bleak = 'Sam and Lee sat in silence. Sam wept. Lee was sad and angry and lonely. Nothing would ever be the same.';
    expect((await analyse(bleak)).genre).toBe('drama');
  });

  it('reads the title for the genre', async () => {
    const plain = 'Sam walked home. Sam opened the door. Lee was waiting inside with a smile.';
    expect((await analyse(plain, 'The Haunted Graveyard')).genre).toBe('horror');
  });

  it('does not count a negated emotion', async () => {
    const emotions = (await analyse('She was not happy. He was never glad. Nobody was joyful that day in the village.')).emotions;
    expect(emotions.find((e) => e.label === 'joy')).toBeUndefined();
  });
});

describe('LocalAnalyser name heuristics', () => {
  it('never takes a capitalised sentence opener for a name', async () => {
    const story = 'The wind howled. When Mira woke, the fire was out. The door was open. When the sun rose, Mira went out. Then it rained.';
    expect(await namesIn(story)).toEqual(['Mira']);
  });

  it('leaves out pronouns, days, months, deities, interjections and directions', async () => {
    const story = `On Monday I met Mira. "Oh God," I said to Mira. "Oh God, no." On Monday in June we drove North. Hey, I thought, Mira is late again. God knows. Monday came. Yes, North again.`;
    expect(await namesIn(story)).toEqual(['Mira']);
  });

  it("counts Mira's as a mention of Mira", async () => {
    expect(await namesIn("Mira's lamp went out. Nobody waited for Mira.")).toEqual(['Mira']);
    expect(await namesIn('The lamp went out. Nobody waited for Mira.')).toEqual([]);
  });

  it('merges a surname and a lone title into the full name', async () => {
    const story = `Captain Reyes checked the map. "We go tonight," said Reyes. The Captain did not sleep. At dawn Reyes was gone.`;
    const { characters } = await analyse(story);
    expect(characters.map((c) => c.name)).toEqual(['Captain Reyes']);
    expect(characters[0]!.description).toContain('Captain Reyes');
  });

  it('merges a first name into the full name, but keeps a shared surname apart', async () => {
    const story = `Mr. Bennet read. Mrs. Bennet sighed at Mr. Bennet. Elizabeth Bennet laughed, and Mrs. Bennet frowned. Later Elizabeth walked to town with Mr. Darcy. Darcy said nothing. Elizabeth smiled.`;
    expect((await namesIn(story)).sort()).toEqual(['Elizabeth Bennet', 'Mr. Bennet', 'Mr. Darcy', 'Mrs. Bennet']);
  });

  it('takes the speaker of dialogue for a name even at the start of a sentence', async () => {
    expect(await namesIn('"Run!" Kade said. The door shook. "Now!" Kade shouted.')).toEqual(['Kade']);
  });

  it('drops places and things that look like names', async () => {
    const story = 'Mira lived in Ashford. The road to Ashford was long. Mira walked it daily. In Ashford the well was dry. The starship Meridian landed. The Meridian was old.';
    expect(await namesIn(story)).toEqual(['Mira']);
    expect(await namesIn('They met on Hazel Street. Tom loved Hazel Street. Tom waved.')).toEqual(['Tom']);
  });

  it('keeps multi-word and particle names whole', async () => {
    expect(await namesIn('Old Tom laughed. Everyone loved Old Tom. Tom was kind.')).toEqual(['Old Tom']);
    expect(await namesIn('Unit Seven rolled forward. Unit Seven waited.')).toEqual(['Unit Seven']);
    expect(await namesIn('Ana de la Cruz sang. Later, de la Cruz danced. Ana smiled.')).toEqual(['Ana de la Cruz']);
  });

  it('caps the characters at 12, most mentioned first', async () => {
    const names = ['Ada', 'Ben', 'Cleo', 'Dev', 'Eli', 'Fay', 'Gus', 'Hal', 'Ivy', 'Jon', 'Kit', 'Lia', 'Max', 'Ned'];
    const story = names.map((name, i) => `Then ${name} spoke. ${`They listened to ${name}. `.repeat(names.length - i)}`).join(' ');
    const found = await namesIn(story);
    expect(found).toEqual(names.slice(0, 12));
  });
});

describe('LocalAnalyser input shape', () => {
  it('takes Windows line breaks and a heading line', async () => {
    const story: StoryText = { title: 'Chapter', content: 'Chapter One\r\n\r\nMira ran to the river.\r\nTom followed Mira.\r\nTom fell.' };
    expect((await analyser.analyse(story)).characters.map((c) => c.name)).toEqual(['Mira', 'Tom']);
  });
});
