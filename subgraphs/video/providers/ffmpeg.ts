/**
 * Runs the ffmpeg binary for the local video provider: no shell (user text never reaches a
 * command line), progress read from `-progress pipe:1`, the process killed when the caller
 * aborts, and the end of stderr kept so a failure says why.
 */
import { spawn } from 'node:child_process';
import ffmpegInstaller from '@ffmpeg-installer/ffmpeg';

/** The configured binary, else the static build @ffmpeg-installer ships for this platform. */
export function resolveFfmpegPath(configured?: string): string {
  return configured ?? ffmpegInstaller.path;
}

/** ffmpeg exited non-zero (or was killed by a signal); `stderrTail` may hold paths: for operators, not authors. */
export class FfmpegError extends Error {
  constructor(
    readonly exitCode: number | null,
    readonly exitSignal: NodeJS.Signals | null,
    readonly stderrTail: string,
  ) {
    super(`ffmpeg exited with ${exitCode !== null ? `code ${exitCode}` : `signal ${exitSignal}`}: ${stderrTail.trim().split('\n').slice(-3).join(' | ')}`);
    this.name = 'FfmpegError';
  }
}

export interface FfmpegRun {
  ffmpegPath: string;
  /** Everything after the global options this module adds (-hide_banner, -nostdin, -y, -progress). */
  args: string[];
  cwd?: string;
  /** The output's length, to turn ffmpeg's out_time into a 0..1 fraction. */
  totalSeconds?: number;
  onProgress?: (fraction: number, outSeconds: number) => void;
  signal?: AbortSignal;
}

const STDERR_TAIL_CHARS = 4000;

/**
 * Resolves when ffmpeg exits 0; rejects with FfmpegError otherwise, or with the abort's reason
 * once the process has been killed (never before it is gone, so no render outlives its caller).
 * Returns the last out_time reported, in seconds: the length of what was written.
 */
export function runFfmpeg(run: FfmpegRun): Promise<number> {
  return new Promise((resolve, reject) => {
    if (run.signal?.aborted) return reject(run.signal.reason);
    const child = spawn(run.ffmpegPath, ['-hide_banner', '-nostdin', '-y', '-progress', 'pipe:1', '-nostats', ...run.args], {
      cwd: run.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let pending = '';
    let outSeconds = 0;
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_TAIL_CHARS);
    });
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (pending + chunk).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        // ffmpeg 4.1 names microseconds "out_time_ms" (a known misnomer); 4.2+ adds out_time_us.
        const match = /^out_time_(?:us|ms)=(\d+)\s*$/.exec(line);
        if (!match) continue;
        outSeconds = Number(match[1]) / 1e6;
        if (run.onProgress && run.totalSeconds && run.totalSeconds > 0) {
          run.onProgress(Math.min(1, outSeconds / run.totalSeconds), outSeconds);
        }
      }
    });
    const onAbort = () => child.kill('SIGKILL');
    run.signal?.addEventListener('abort', onAbort, { once: true });
    child.once('error', (error) => {
      run.signal?.removeEventListener('abort', onAbort);
      reject(error);
    });
    child.once('close', (code, exitSignal) => {
      run.signal?.removeEventListener('abort', onAbort);
      if (run.signal?.aborted) return reject(run.signal.reason);
      if (code === 0) return resolve(outSeconds);
      reject(new FfmpegError(code, exitSignal, stderr));
    });
  });
}

/**
 * How long an audio file plays, in seconds, by decoding it (headers lie: a VBR MP3 without a
 * Xing frame has only an estimate), reading at most `maxSeconds`. Rejects when it cannot be
 * decoded or holds no audio.
 */
export async function measureAudioSeconds(ffmpegPath: string, file: string, maxSeconds: number, signal?: AbortSignal): Promise<number> {
  const seconds = await runFfmpeg({
    ffmpegPath,
    args: ['-i', file, '-map', '0:a:0', '-t', String(maxSeconds), '-f', 'null', '-'],
    ...(signal ? { signal } : {}),
  });
  if (!(seconds > 0)) throw new Error('The audio decoded to nothing');
  return seconds;
}
