import { PROMPT_MAX_CHARS } from './providers/provider.js';

export interface PromptSource {
  title: string;
  summary: string | null;
  genre: string | null;
  characters: { name: string; description: string }[];
  emotions: { label: string; intensity: number }[];
  /** The story's opening, used when there is no analysis to summarise it. */
  opening: string;
}

/**
 * The text prompt every provider gets: a short film brief from the story's analysis (genre,
 * characters, the strongest emotions) and the client's style, in the order a text-to-video
 * model weighs most: what the scene is, who is in it, how it feels, how it looks. Cut to the
 * smallest provider limit at a word boundary.
 */
export function buildPrompt(source: PromptSource, style: string | null): string {
  const parts: string[] = [];
  const genre = source.genre ? `${source.genre} ` : '';
  parts.push(`A cinematic ${genre}short film of the story "${source.title}".`);
  const about = source.summary?.trim() || firstSentences(source.opening, 2);
  if (about) parts.push(about);
  const characters = source.characters.slice(0, 4).map((c) => (c.description ? `${c.name} (${c.description})` : c.name));
  if (characters.length) parts.push(`Characters: ${characters.join('; ')}.`);
  const moods = [...source.emotions].sort((a, b) => b.intensity - a.intensity).slice(0, 3).map((e) => e.label);
  if (moods.length) parts.push(`Mood: ${moods.join(', ')}.`);
  if (style) parts.push(`Visual style: ${style}.`);
  return clip(parts.join(' ').replace(/\s+/g, ' ').trim(), PROMPT_MAX_CHARS);
}

function firstSentences(text: string, count: number): string {
  const sentences = text.replace(/\s+/g, ' ').trim().match(/[^.!?]+[.!?]+/g) ?? [text.trim()];
  return sentences.slice(0, count).join(' ').trim();
}

function clip(text: string, max: number): string {
  if (text.length <= max) return text;
  const cut = text.slice(0, max - 1);
  const space = cut.lastIndexOf(' ');
  return `${(space > max * 0.6 ? cut.slice(0, space) : cut).trimEnd()}…`;
}
