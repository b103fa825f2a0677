/**
 * The local renderer's title cards as plain data (which cards, how long, which lines) and the
 * ffmpeg filter graph that draws them. No I/O: local-render.ts writes the text files and runs it.
 *
 * User text never enters the filter graph: each line goes to its own text file read by
 * drawtext's `textfile=` with `expansion=none` (else "%{...}" in a title would be evaluated).
 * One drawtext per line because ffmpeg 4.1's drawtext cannot centre the lines of a block.
 */
import type { AspectRatio, VideoBrief } from './provider.js';

export interface Palette {
  background: string;
  accent: string;
  text: string;
  muted: string;
}

export interface CardLine {
  text: string;
  /** Font size as a share of the frame's short side. */
  size: number;
  bold: boolean;
  color: keyof Omit<Palette, 'background'>;
}

export interface Card {
  seconds: number;
  lines: CardLine[];
  /** An accent rule under the line at this index (the opening card's title). */
  ruleAfter?: number;
}

/** Below this a card cannot be read, so character cards are dropped rather than flashed. */
const MIN_CARD_SECONDS = 1.5;
const MAX_CHARACTER_CARDS = 5;
const OPENING_WEIGHT = 1.5;

export function frameSize(aspectRatio: AspectRatio, shortSide: number): { width: number; height: number } {
  // H.264 in yuv420p needs even sides.
  const short = Math.max(2, Math.round(shortSide / 2) * 2);
  const long = Math.round((short * 16) / 9 / 2) * 2;
  if (aspectRatio === '9:16') return { width: short, height: long };
  if (aspectRatio === '1:1') return { width: short, height: short };
  return { width: long, height: short };
}

const PALETTES = {
  warm: { background: '0x5a3a0a', accent: '0xffd166', text: '0xfff8e7', muted: '0xf2d9a6' },
  sad: { background: '0x14213d', accent: '0x8ecae6', text: '0xeef4fb', muted: '0xa9bcd0' },
  dark: { background: '0x120d1a', accent: '0xb39ddb', text: '0xede7f6', muted: '0x9e94ad' },
  anger: { background: '0x4a0f0f', accent: '0xff8a65', text: '0xfff1ec', muted: '0xe0a899' },
  love: { background: '0x4a1530', accent: '0xff8fab', text: '0xfff0f5', muted: '0xe3aabd' },
  calm: { background: '0x0f3b36', accent: '0x7ee0c3', text: '0xeefbf7', muted: '0x9cc9bd' },
  wonder: { background: '0x2b1b4d', accent: '0xffc857', text: '0xf7f2ff', muted: '0xc2b5dd' },
  neutral: { background: '0x1f2933', accent: '0x7cc4fa', text: '0xf5f7fa', muted: '0xb8c2cc' },
} satisfies Record<string, Palette>;

type Mood = keyof typeof PALETTES;

/** Keywords, not an enum: emotion labels and genres are free text from the analysis and the author. */
const EMOTION_MOODS: [RegExp, Mood][] = [
  [/joy|happ|delight|excit|hope|fun|amus|optimis/, 'warm'],
  [/sad|grief|sorrow|melanch|lonel|despair|loss/, 'sad'],
  [/fear|terror|dread|anxi|horror|scared|suspense/, 'dark'],
  [/anger|rage|fury|frustrat|hate|disgust/, 'anger'],
  [/love|affection|romant|tender|passion/, 'love'],
  [/calm|peace|trust|seren|content|relief|nostalg/, 'calm'],
  [/surpris|wonder|awe|curio|anticip|mystery|amaze/, 'wonder'],
];
const GENRE_MOODS: [RegExp, Mood][] = [
  [/horror|thriller|gothic/, 'dark'],
  [/romance|love/, 'love'],
  [/comedy|humou?r|adventure|children/, 'warm'],
  [/fantasy|fairy|myth|magic|mystery/, 'wonder'],
  [/sci|space|cyber|future/, 'calm'],
  [/drama|tragedy|war/, 'sad'],
];

/** The dominant emotion's colours, else the genre's, else neutral. */
export function paletteFor(story: Pick<VideoBrief['story'], 'emotions' | 'genre'>): Palette {
  const dominant = [...story.emotions].filter((e) => e.intensity > 0).sort((a, b) => b.intensity - a.intensity)[0];
  const match = (text: string | null | undefined, table: [RegExp, Mood][]) => (text ? table.find(([re]) => re.test(text.toLowerCase()))?.[1] : undefined);
  return PALETTES[match(dominant?.label, EMOTION_MOODS) ?? match(story.genre, GENRE_MOODS) ?? 'neutral'];
}

/** One line of user text: no control or format characters (a newline would start a line drawtext cannot centre). */
export function cleanText(text: string | null | undefined): string {
  return (text ?? '')
    .normalize('NFC')
    .replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

/** CJK glyphs are about twice as wide as Latin ones. */
const WIDE = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]/u;
const unitsOf = (text: string) => Array.from(text).reduce((sum, ch) => sum + (WIDE.test(ch) ? 1.8 : 1), 0);

/** Greedy word wrap to `maxUnits` per line; overlong words are cut; past `maxLines` the last line ends in "…". */
export function wrapText(text: string, maxUnits: number, maxLines: number): string[] {
  const limit = Math.max(4, Math.floor(maxUnits));
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ').filter(Boolean)) {
    const candidate = line ? `${line} ${word}` : word;
    if (unitsOf(candidate) <= limit) {
      line = candidate;
      continue;
    }
    if (line) lines.push(line);
    line = '';
    for (const ch of Array.from(word)) {
      if (unitsOf(line + ch) > limit) {
        lines.push(line);
        line = '';
      }
      line += ch;
    }
  }
  if (line) lines.push(line);
  if (lines.length <= maxLines) return lines;
  const kept = lines.slice(0, maxLines);
  const last = Array.from(kept[maxLines - 1]!);
  while (last.length > 0 && unitsOf(last.join('') + '…') > limit) last.pop();
  kept[maxLines - 1] = `${last.join('').trimEnd()}…`;
  return kept;
}

export interface CardPlanInput {
  story: VideoBrief['story'];
  width: number;
  height: number;
  totalSeconds: number;
  fps: number;
  /** Shown small on the ending card, e.g. that the narration could not be used. */
  notes: string[];
}

/** The cards, their lines wrapped to the frame, their lengths summing to `totalSeconds` (to the frame). */
/** Seconds a card is shown when nothing else sets the length: enough to read a character's description. */
const READING_SECONDS = 2.5;

/**
 * How long a silent video of this story lasts for every card to be read. The providers' few
 * seconds (VIDEO_DURATION_SECONDS) would leave no time for the characters.
 */
export function readableSeconds(story: Pick<CardPlanInput['story'], 'characters'>): number {
  const characters = story.characters.filter((c) => cleanText(c.name)).length;
  return READING_SECONDS * (OPENING_WEIGHT + Math.min(characters, MAX_CHARACTER_CARDS) + 1);
}

export function planCards(input: CardPlanInput): Card[] {
  const { story, width, height } = input;
  const short = Math.min(width, height);
  // DejaVu Sans averages ~0.6 em a character, bold ~0.66; 86% of the width leaves a margin.
  const wrap = (text: string, size: number, bold: boolean, maxLines: number) => wrapText(text, (width * 0.86) / (size * short * (bold ? 0.66 : 0.6)), maxLines);
  const lines = (text: string, size: number, bold: boolean, color: CardLine['color'], maxLines: number): CardLine[] =>
    wrap(text, size, bold, maxLines).map((t) => ({ text: t, size, bold, color }));

  const title = cleanText(story.title) || 'Untitled story';
  const author = cleanText(story.authorName);
  const genre = cleanText(story.genre).toUpperCase();
  const opening = [...(genre ? lines(genre, 0.045, false, 'accent', 1) : []), ...lines(title, 0.11, true, 'text', 3)];
  const ruleAfter = opening.length - 1;
  if (author) opening.push(...lines(`by ${author}`, 0.06, false, 'muted', 2));

  const characters = story.characters
    .map((c) => ({ name: cleanText(c.name), description: cleanText(c.description) }))
    .filter((c) => c.name)
    .slice(0, MAX_CHARACTER_CARDS);
  let count = characters.length;
  while (count > 0 && input.totalSeconds / (OPENING_WEIGHT + count + 1) < MIN_CARD_SECONDS) count--;
  const characterCards = characters.slice(0, count).map((c) => [...lines(c.name, 0.09, true, 'accent', 2), ...(c.description ? lines(c.description, 0.055, false, 'text', 4) : [])]);

  const ending = [
    ...lines("Made by Storyloom's local renderer", 0.06, true, 'text', 2),
    ...lines('Rendered offline: no video provider was used', 0.045, false, 'muted', 2),
    ...input.notes.flatMap((note) => lines(cleanText(note), 0.04, false, 'muted', 2)),
  ];

  const weights = [OPENING_WEIGHT, ...characterCards.map(() => 1), 1];
  const frames = splitFrames(Math.round(input.totalSeconds * input.fps), weights);
  const all = [opening, ...characterCards, ending];
  return all.map((cardLines, i) => ({ seconds: frames[i]! / input.fps, lines: cardLines, ...(i === 0 ? { ruleAfter } : {}) }));
}

/** Whole frames per card in proportion to `weights`, summing exactly to `total` (cumulative rounding). */
function splitFrames(total: number, weights: number[]): number[] {
  const sum = weights.reduce((a, b) => a + b, 0);
  let acc = 0;
  let previous = 0;
  return weights.map((w) => {
    acc += w;
    const edge = Math.round((acc / sum) * total);
    const frames = edge - previous;
    previous = edge;
    return frames;
  });
}

/** A value for a filter option, escaped for both levels ffmpeg parses (option value, then filtergraph). */
export function escapeFilterValue(value: string): string {
  return value.replace(/[\\':]/g, '\\$&').replace(/[\\'[\],;]/g, '\\$&');
}

export interface GraphInput {
  cards: Card[];
  palette: Palette;
  width: number;
  height: number;
  fps: number;
  totalSeconds: number;
  fontPath: string;
  boldFontPath: string;
  /** Input 0 is the narration; else a silent track, so every video has audio. */
  audio: 'narration' | 'silence';
  /** Fade the narration out at the end because it was cut to `totalSeconds`. */
  fadeOutAudio: boolean;
}

/** The filter graph (outputs [v] and [a]) and the text files it reads, named relative to ffmpeg's cwd. */
export function buildFilterGraph(input: GraphInput): { graph: string; textFiles: { name: string; text: string }[] } {
  const { width, height, palette, fps } = input;
  const short = Math.min(width, height);
  const textFiles: { name: string; text: string }[] = [];
  const chains = input.cards.map((card, c) => {
    const heights = card.lines.map((line) => Math.round(line.size * short * 1.35));
    const gap = Math.round(short * 0.03);
    let y = Math.round((height - heights.reduce((a, b) => a + b, 0) - (card.ruleAfter !== undefined ? gap : 0)) / 2);
    const filters = [`color=c=${palette.background}:s=${width}x${height}:r=${fps}:d=${card.seconds.toFixed(6)}`];
    card.lines.forEach((line, l) => {
      const name = `card-${c}-${l}.txt`;
      textFiles.push({ name, text: line.text });
      const size = Math.round(line.size * short);
      const font = escapeFilterValue(line.bold ? input.boldFontPath : input.fontPath);
      const top = y + Math.round((heights[l]! - size) / 2);
      filters.push(`drawtext=fontfile=${font}:textfile=${escapeFilterValue(name)}:expansion=none:fontsize=${size}:fontcolor=${palette[line.color]}:x=(w-text_w)/2:y=${top}`);
      y += heights[l]!;
      if (card.ruleAfter === l) {
        const thickness = Math.max(2, Math.round(short * 0.008));
        filters.push(`drawbox=x=${Math.round(width * 0.4)}:y=${y + Math.round((gap - thickness) / 2)}:w=${Math.round(width * 0.2)}:h=${thickness}:color=${palette.accent}:t=fill`);
        y += gap;
      }
    });
    const fade = Math.min(0.4, card.seconds / 6);
    filters.push(`fade=t=in:st=0:d=${fade.toFixed(3)}`, `fade=t=out:st=${(card.seconds - fade).toFixed(3)}:d=${fade.toFixed(3)}`);
    return `${filters.join(',')}[v${c}]`;
  });
  const total = input.totalSeconds.toFixed(3);
  const labels = input.cards.map((_, c) => `[v${c}]`).join('');
  const video = `${labels}concat=n=${input.cards.length}:v=1:a=0,format=yuv420p[v]`;
  const audio =
    input.audio === 'narration'
      ? `[0:a:0]aresample=44100,aformat=channel_layouts=mono,apad,atrim=duration=${total}${input.fadeOutAudio ? `,afade=t=out:st=${Math.max(0, input.totalSeconds - 1).toFixed(3)}:d=1` : ''}[a]`
      : `anullsrc=r=44100:cl=mono,atrim=duration=${total}[a]`;
  return { graph: [...chains, video, audio].join(';\n'), textFiles };
}
