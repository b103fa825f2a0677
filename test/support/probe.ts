import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ffmpeg from '@ffmpeg-installer/ffmpeg';

/** What ffmpeg says of a file: its duration in seconds and its stream kinds. */
export function probe(bytes: Buffer): { seconds: number; streams: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'video-e2e-'));
  try {
    const file = join(dir, 'video.mp4');
    writeFileSync(file, bytes);
    let info = '';
    try {
      execFileSync(ffmpeg.path, ['-hide_banner', '-i', file], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (error) {
      // ffmpeg with an input and no output exits 1 after describing the input.
      info = String((error as { stderr: Buffer }).stderr);
    }
    const [, h, m, s] = /Duration: (\d+):(\d+):([\d.]+)/.exec(info) ?? [];
    return { seconds: Number(h) * 3600 + Number(m) * 60 + Number(s), streams: [...info.matchAll(/Stream #\S+: (Video|Audio)/g)].map((x) => x[1]!) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
