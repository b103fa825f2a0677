/**
 * One render of the local provider, in its task folder: fetch the narration (optional: a video
 * without it beats no video), plan the cards, run ffmpeg into a temporary file and rename it,
 * so `video.mp4` only ever exists whole.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { measureAudioSeconds, runFfmpeg } from './ffmpeg.js';
import { buildFilterGraph, frameSize, paletteFor, planCards, readableSeconds } from './local-cards.js';
import type { VideoBrief } from './provider.js';

export const VIDEO_FILE = 'video.mp4';
const NARRATION_FILE = 'narration.audio';
const MIN_SECONDS = 4;
const DEFAULT_SECONDS = 8;

export interface RenderSettings {
  ffmpegPath: string;
  fontPath: string;
  boldFontPath: string;
  shortSide: number;
  fps: number;
  maxSeconds: number;
  narrationTimeoutMs: number;
  narrationMaxBytes: number;
}

export async function renderBrief(
  brief: VideoBrief,
  dir: string,
  settings: RenderSettings,
  options: { signal: AbortSignal; onProgress: (fraction: number) => void },
): Promise<void> {
  const { signal } = options;
  const notes: string[] = [];
  let narrationSeconds: number | null = null;
  if (brief.narration) {
    try {
      await fetchNarration(brief.narration.url, join(dir, NARRATION_FILE), settings, signal);
      // One second past the cap tells a narration that had to be cut from one that fits exactly.
      narrationSeconds = await measureAudioSeconds(settings.ffmpegPath, join(dir, NARRATION_FILE), settings.maxSeconds + 1, signal);
    } catch {
      if (signal.aborted) throw signal.reason;
      notes.push('The narration could not be loaded, so this video is silent.');
    }
  }
  const requested = Number.isFinite(brief.durationSeconds) && brief.durationSeconds > 0 ? brief.durationSeconds : DEFAULT_SECONDS;
  const totalSeconds = Math.min(settings.maxSeconds, Math.max(MIN_SECONDS, narrationSeconds ?? Math.max(requested, readableSeconds(brief.story))));
  const { width, height } = frameSize(brief.aspectRatio, settings.shortSide);
  const cards = planCards({ story: brief.story, width, height, totalSeconds, fps: settings.fps, notes });
  const { graph, textFiles } = buildFilterGraph({
    cards,
    palette: paletteFor(brief.story),
    width,
    height,
    fps: settings.fps,
    totalSeconds,
    fontPath: settings.fontPath,
    boldFontPath: settings.boldFontPath,
    audio: narrationSeconds !== null ? 'narration' : 'silence',
    fadeOutAudio: narrationSeconds !== null && narrationSeconds > totalSeconds,
  });
  await Promise.all([...textFiles.map((f) => writeFile(join(dir, f.name), f.text)), writeFile(join(dir, 'graph.txt'), graph)]);

  // A random name per attempt: a render killed midway, or a second process re-rendering the
  // same task, never writes into a file another attempt will rename.
  const part = `video.${randomBytes(6).toString('hex')}.part.mp4`;
  try {
    await runFfmpeg({
      ffmpegPath: settings.ffmpegPath,
      cwd: dir,
      args: [
        ...(narrationSeconds !== null ? ['-i', NARRATION_FILE] : []),
        ...['-filter_complex_script', 'graph.txt', '-map', '[v]', '-map', '[a]', '-t', totalSeconds.toFixed(3)],
        ...['-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'stillimage', '-crf', '23', '-pix_fmt', 'yuv420p', '-r', String(settings.fps)],
        ...['-c:a', 'aac', '-b:a', '96k', '-ar', '44100', '-ac', '1', '-movflags', '+faststart', '-f', 'mp4', part],
      ],
      totalSeconds,
      onProgress: options.onProgress,
      signal,
    });
    await rename(join(dir, part), join(dir, VIDEO_FILE));
  } catch (error) {
    await rm(join(dir, part), { force: true });
    throw error;
  }
}

/**
 * Streams the narration to `file`, refusing anything but http(s), past the deadline, or past the
 * size cap. Narration links are our storage's signed links, served directly: a redirect is not
 * followed, so the link cannot send the renderer to another host.
 */
async function fetchNarration(url: string, file: string, settings: RenderSettings, signal: AbortSignal): Promise<void> {
  const protocol = new URL(url).protocol;
  if (protocol !== 'http:' && protocol !== 'https:') throw new Error(`Narration URL scheme ${protocol} is not fetched`);
  const deadline = AbortSignal.any([signal, AbortSignal.timeout(settings.narrationTimeoutMs)]);
  const response = await fetch(url, { signal: deadline, redirect: 'error' });
  if (!response.ok || !response.body) {
    // Unread, the error's body would hold its connection open until garbage collection.
    await response.body?.cancel().catch(() => {});
    throw new Error(`Narration answered HTTP ${response.status}`);
  }
  let bytes = 0;
  const cap = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length;
      callback(bytes > settings.narrationMaxBytes ? new Error('Narration is too large') : null, chunk);
    },
  });
  await pipeline(Readable.fromWeb(response.body as WebReadableStream), cap, createWriteStream(file), { signal: deadline });
}
