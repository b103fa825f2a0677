import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { createServer, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { closeServer, listen } from '../../../platform/http/server.js';
import { resolveFfmpegPath } from './ffmpeg.js';
import { createLocalVideoProvider, type LocalVideoProvider, type LocalVideoProviderOptions } from './local.js';
import { VideoProviderError, type TaskHandle, type TaskStatus, type VideoBrief } from './provider.js';

const ffmpeg = resolveFfmpegPath();
const never = new AbortController().signal;
const NARRATION_SECONDS = 6;

let root: string;
let workDir: string;
let narrationUrl: string;
/** Requests to /refused.wav whose connection the client has closed. */
let refusedClosed = 0;
/** Answers to /refused.wav left hanging, ended at the end. */
const hanging = new Set<ServerResponse>();
const server = createServer((req, res) => {
  if (req.url === '/narration.wav') res.writeHead(200, { 'content-type': 'audio/wav' }).end(toneWav(NARRATION_SECONDS));
  else if (req.url === '/refused.wav') {
    // An error whose body never ends: only a client that lets it go closes the connection.
    req.socket.once('close', () => refusedClosed++);
    hanging.add(res);
    res.writeHead(403, { 'content-type': 'application/xml', 'content-length': 10_000 }).write('<Error><Code>AccessDenied</Code>');
  } else if (req.url?.startsWith('/moved/')) res.writeHead(302, { location: `${otherHostUrl}/narration.wav` }).end();
  else res.writeHead(404).end();
});
/** Another host, where a redirect would send the narration fetch: counts what reaches it. */
let otherHostUrl: string;
let otherHostRequests = 0;
const otherHost = createServer((_req, res) => {
  otherHostRequests++;
  res.writeHead(200, { 'content-type': 'audio/wav' }).end(toneWav(NARRATION_SECONDS));
});
const providers: LocalVideoProvider[] = [];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'storyloom-local-video-'));
  // Characters ffmpeg's filter syntax treats specially, in the folder every task lives under.
  workDir = join(root, "work dir: it's [a],b;%");
  narrationUrl = `${await listen(server, 0, '127.0.0.1')}/narration.wav`;
  otherHostUrl = await listen(otherHost, 0, '127.0.0.1');
});

afterAll(async () => {
  await Promise.all(providers.map((p) => p.close()));
  for (const res of hanging) res.destroy();
  await Promise.all([closeServer(server), closeServer(otherHost)]);
  await rm(root, { recursive: true, force: true });
});

function provider(overrides: Partial<LocalVideoProviderOptions> = {}): LocalVideoProvider {
  const created = createLocalVideoProvider({ workDir, pollIntervalMs: 50, taskTimeoutMs: 60_000, maxConcurrentRenders: 2, ...overrides });
  providers.push(created);
  return created;
}

function brief(overrides: Partial<VideoBrief> = {}, story: Partial<VideoBrief['story']> = {}): VideoBrief {
  return {
    jobId: randomUUID(),
    prompt: 'A lighthouse in a storm',
    durationSeconds: 6,
    aspectRatio: '16:9',
    style: null,
    narration: null,
    ...overrides,
    story: { title: 'The Lighthouse', authorName: 'Ada Quill', summary: null, genre: 'Fantasy', characters: [], emotions: [{ label: 'wonder', intensity: 0.7 }], ...story },
  };
}

const THREE_CHARACTERS = [
  { name: 'Mira', description: 'A stubborn girl who keeps the light burning through every storm.' },
  { name: 'Old Tom', description: 'The keeper, half deaf, who taught her the lamp.' },
  { name: 'The Gull', description: 'Watches everything.' },
];

/** Polls until the task ends, keeping every status seen on the way. */
async function settle(p: LocalVideoProvider, handle: TaskHandle, timeout = 30_000): Promise<{ final: TaskStatus; seen: TaskStatus[] }> {
  const seen: TaskStatus[] = [];
  const final = await vi.waitFor(
    async () => {
      const status = await p.status(handle, { signal: never });
      seen.push(status);
      if (status.state !== 'SUCCEEDED' && status.state !== 'FAILED') throw new Error(`still ${status.state}`);
      return status;
    },
    { timeout, interval: 20 },
  );
  return { final, seen };
}

async function renderToFile(p: LocalVideoProvider, b: VideoBrief): Promise<{ file: string; bytes: Buffer; handle: TaskHandle; seen: TaskStatus[] }> {
  const handle = await p.create(b, { signal: never });
  const { final, seen } = await settle(p, handle);
  if (final.state !== 'SUCCEEDED') throw new Error(`render ended ${JSON.stringify(final)}`);
  const bytes = await download(p, final.videoUrl);
  const file = join(root, `${handle.id}.mp4`);
  await writeFile(file, bytes);
  return { file, bytes, handle, seen };
}

async function download(p: LocalVideoProvider, url: string): Promise<Buffer> {
  const { body, contentType } = await p.download(url, { signal: never });
  expect(contentType).toBe('video/mp4');
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function run(args: string[]): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(ffmpeg, ['-hide_banner', '-nostdin', ...args]);
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr }));
  });
}

async function probe(file: string) {
  const { stderr } = await run(['-i', file]);
  const duration = /Duration: (\d+):(\d+):([\d.]+)/.exec(stderr);
  return {
    seconds: duration ? Number(duration[1]) * 3600 + Number(duration[2]) * 60 + Number(duration[3]) : NaN,
    video: /Stream #0:\d.*: Video: h264.*yuv420p.*?(\d+)x(\d+)/.exec(stderr)?.slice(1, 3).map(Number) ?? null,
    audio: /Stream #0:\d.*: Audio: aac/.test(stderr),
  };
}

async function frame(file: string, atSeconds: number, pixFmt: 'gray' | 'rgb24'): Promise<Buffer> {
  const { code, stdout } = await run(['-ss', String(atSeconds), '-i', file, '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', pixFmt, '-']);
  expect(code).toBe(0);
  return stdout;
}

/** Pixels of a gray frame far from its most common value (the card's background): drawn text. */
function inkPixels(gray: Buffer): number {
  const counts = new Array<number>(256).fill(0);
  for (const v of gray) counts[v]!++;
  const background = counts.indexOf(Math.max(...counts));
  return gray.filter((v) => Math.abs(v - background) > 40).length;
}

async function maxVolumeDb(file: string): Promise<number> {
  const { stderr } = await run(['-i', file, '-map', '0:a', '-af', 'volumedetect', '-f', 'null', '-']);
  return Number(/max_volume: (-?[\d.]+|-inf) dB/.exec(stderr)?.[1] ?? NaN);
}

/** 16-bit PCM mono WAV of a 440 Hz tone at half scale. */
function toneWav(seconds: number, rate = 16_000): Buffer {
  const samples = Math.round(seconds * rate);
  const wav = Buffer.alloc(44 + samples * 2);
  wav.write('RIFF', 0);
  wav.writeUInt32LE(36 + samples * 2, 4);
  wav.write('WAVEfmt ', 8);
  wav.writeUInt32LE(16, 16);
  wav.writeUInt16LE(1, 20);
  wav.writeUInt16LE(1, 22);
  wav.writeUInt32LE(rate, 24);
  wav.writeUInt32LE(rate * 2, 28);
  wav.writeUInt16LE(2, 32);
  wav.writeUInt16LE(16, 34);
  wav.write('data', 36);
  wav.writeUInt32LE(samples * 2, 40);
  for (let i = 0; i < samples; i++) wav.writeInt16LE(Math.round(16_384 * Math.sin((2 * Math.PI * 440 * i) / rate)), 44 + i * 2);
  return wav;
}

/** ffmpeg processes this test process spawned that are still alive (Linux /proc). */
async function ffmpegChildren(): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const comm = /\((.*)\)/.exec(stat)?.[1];
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (comm === 'ffmpeg' && ppid === process.pid) pids.push(Number(entry));
  }
  return pids;
}

/**
 * A stand-in for ffmpeg, named ffmpeg (so ffmpegChildren sees it), that reports `fraction` of
 * the output written, notes the run, and then waits to be killed: a render it runs is always
 * midway when a test looks.
 */
async function stuckFfmpeg(fraction: number): Promise<{ path: string; runs: () => Promise<number> }> {
  const dir = await mkdtemp(join(root, 'stuck-ffmpeg-'));
  const log = join(dir, 'runs.log');
  const path = join(dir, 'ffmpeg');
  // `-t <seconds>` among the arguments is the output's length: out_time is that much of it.
  const script = [
    '#!/bin/sh',
    `echo run >> '${log}'`,
    'total=1; prev=; for arg in "$@"; do [ "$prev" = "-t" ] && total=$arg; prev=$arg; done',
    `echo "out_time_us=$(awk "BEGIN { printf \\"%d\\", $total * ${fraction} * 1000000 }")"`,
    'echo progress=continue',
    'while :; do sleep 0.05; done',
  ];
  await writeFile(path, `${script.join('\n')}\n`);
  await chmod(path, 0o755);
  const runs = () => readFile(log, 'utf8').then((text) => text.split('\n').filter(Boolean).length, () => 0);
  return { path, runs };
}

/** A task folder as an earlier process left it: its brief, written `ageMs` ago, and nothing else. */
async function leftBehind(dir: string, b: VideoBrief, ageMs: number): Promise<TaskHandle> {
  const id = randomUUID();
  await mkdir(join(dir, id), { recursive: true });
  await writeFile(join(dir, id, 'brief.json'), JSON.stringify(b));
  const then = new Date(Date.now() - ageMs);
  await utimes(join(dir, id, 'brief.json'), then, then);
  return { id };
}

function progressValues(seen: TaskStatus[]): number[] {
  return seen.flatMap((s) => (s.state === 'RUNNING' && s.progress !== null ? [s.progress] : []));
}

describe('local video provider', () => {
  it('renders a story with three characters into an H.264/AAC MP4 of the asked length, with text drawn', async () => {
    const p = provider();
    const { file, bytes, seen } = await renderToFile(p, brief({ durationSeconds: 16 }, { characters: THREE_CHARACTERS }));

    expect(seen[0]!.state).toMatch(/QUEUED|RUNNING/);
    expect(seen.at(-1)!.state).toBe('SUCCEEDED');
    const progress = progressValues(seen);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    expect(bytes.subarray(4, 8).toString('latin1')).toBe('ftyp');
    const info = await probe(file);
    expect(info.seconds).toBeCloseTo(16, 0);
    expect(info.video).toEqual([640, 360]);
    expect(info.audio).toBe(true);
    // Silent, yet present: every video has an audio track.
    expect(await maxVolumeDb(file)).toBeLessThan(-80);
    expect(new Set(await frame(file, 1.5, 'gray')).size).toBeGreaterThan(8);
  });

  it('lays the narration under the cards and stretches them to its length, cut at maxSeconds', async () => {
    const p = provider();
    const { file } = await renderToFile(p, brief({ durationSeconds: 4, narration: { url: narrationUrl, contentType: 'audio/wav' } }));
    const info = await probe(file);
    expect(info.seconds).toBeGreaterThan(NARRATION_SECONDS - 0.15);
    expect(info.seconds).toBeLessThan(NARRATION_SECONDS + 0.15);
    expect(info.audio).toBe(true);
    expect(await maxVolumeDb(file)).toBeGreaterThan(-20);

    const capped = provider({ maxSeconds: 5 });
    const cut = await renderToFile(capped, brief({ durationSeconds: 4, narration: { url: narrationUrl, contentType: 'audio/wav' } }));
    expect((await probe(cut.file)).seconds).toBeCloseTo(5, 0);
  });

  it('makes a silent video long enough to read every card, when the asked length is shorter', async () => {
    const p = provider();
    // 2.5 s a card: the opening (1.5 cards), three characters and the ending.
    const { file } = await renderToFile(p, brief({ durationSeconds: 5 }, { characters: THREE_CHARACTERS }));
    expect((await probe(file)).seconds).toBeCloseTo(13.75, 0);
  });

  it('renders silently at the asked length when the narration cannot be fetched', async () => {
    const p = provider();
    const { file } = await renderToFile(p, brief({ durationSeconds: 7, narration: { url: narrationUrl.replace('narration.wav', 'gone.wav'), contentType: 'audio/wav' } }));
    const info = await probe(file);
    expect(info.seconds).toBeCloseTo(7, 0);
    expect(info.audio).toBe(true);
    expect(await maxVolumeDb(file)).toBeLessThan(-80);
  });

  it('shows hostile titles as text, never as filter options, with a font under an odd path', async () => {
    const fonts = join(root, "fonts: it's [odd],%;");
    await mkdir(fonts, { recursive: true });
    const fontDir = join(dirname(createRequire(import.meta.url).resolve('dejavu-fonts-ttf/package.json')), 'ttf');
    await copyFile(join(fontDir, 'DejaVuSans.ttf'), join(fonts, 'regular.ttf'));
    await copyFile(join(fontDir, 'DejaVuSans-Bold.ttf'), join(fonts, 'bold.ttf'));
    const p = provider({ fontPath: join(fonts, 'regular.ttf'), boldFontPath: join(fonts, 'bold.ttf') });
    const characters = [{ name: 'Ночь; [a],b', description: "she said: 'no' %{eif\\:1\\:d} \\n 東京" }];
    const story = { authorName: null, genre: null, emotions: [{ label: 'joy', intensity: 0.9 }], characters };
    const [hostile, plain, byline] = await Promise.all([
      renderToFile(p, brief({}, { ...story, title: "x:fontcolor=red'\\" })),
      renderToFile(p, brief({}, { ...story, title: 'x' })),
      renderToFile(p, brief({}, { ...story, title: 'x', authorName: 'Zoë "Q" O\'Neil, 100% %{pts} \\ Ωμέγα', genre: 'a:b;c' })),
    ]);

    const plainInk = inkPixels(await frame(plain.file, 1.5, 'gray'));
    // The whole title was drawn, not just the "x" before the first colon.
    expect(inkPixels(await frame(hostile.file, 1.5, 'gray'))).toBeGreaterThan(plainInk * 3);
    expect(inkPixels(await frame(byline.file, 1.5, 'gray'))).toBeGreaterThan(plainInk * 3);
    const rgb = await frame(hostile.file, 1.5, 'rgb24');
    let red = 0;
    for (let i = 0; i < rgb.length; i += 3) if (rgb[i]! > 180 && rgb[i + 1]! < 80 && rgb[i + 2]! < 80) red++;
    expect(red).toBe(0);
    // The character card, with its Cyrillic name and description full of syntax.
    expect(inkPixels(await frame(hostile.file, 3.5, 'gray'))).toBeGreaterThan(plainInk);
  });

  it('reports ffmpeg progress, and a render killed midway is resumed by the next process from the stored brief', async () => {
    // The first process's "ffmpeg" reports a quarter written and never finishes: it is always caught midway.
    const stuck = await stuckFfmpeg(0.25);
    const first = provider({ ffmpegPath: stuck.path });
    const handle = await first.create(brief({ durationSeconds: 120 }, { characters: THREE_CHARACTERS }), { signal: never });
    const midway = await vi.waitFor(
      async () => {
        const status = await first.status(handle, { signal: never });
        if (status.state !== 'RUNNING' || !status.progress) throw new Error(`not midway: ${JSON.stringify(status)}`);
        return status.progress;
      },
      { timeout: 20_000, interval: 10 },
    );
    expect(midway).toBeCloseTo(0.25, 5);
    expect(await ffmpegChildren()).toHaveLength(1);
    await first.close();
    expect(await ffmpegChildren()).toEqual([]);
    expect((await readdir(join(workDir, handle.id))).filter((f) => f.endsWith('.mp4'))).toEqual([]);
    await expect(first.status(handle, { signal: never })).rejects.toMatchObject({ reason: 'UNAVAILABLE' });

    const restarted = provider();
    expect((await restarted.status(handle, { signal: never })).state).toMatch(/QUEUED|RUNNING/);
    const { final, seen } = await settle(restarted, handle);
    expect(final).toEqual({ state: 'SUCCEEDED', videoUrl: `local:${handle.id}` });
    const progress = progressValues(seen);
    expect(progress.some((v) => v > 0 && v < 1)).toBe(true);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    const file = join(root, 'resumed.mp4');
    await writeFile(file, await download(restarted, `local:${handle.id}`));
    expect((await probe(file)).seconds).toBeCloseTo(120, 0);
  });

  it('fails, without rendering it, a task whose time ran out before a restarted process asked about it', async () => {
    const stuck = await stuckFfmpeg(0.5);
    const handle = await leftBehind(workDir, brief(), 2 * 60_000);
    const restarted = provider({ ffmpegPath: stuck.path, taskTimeoutMs: 60_000 });
    const status = await restarted.status(handle, { signal: never });
    expect(status).toEqual({ state: 'FAILED', message: 'The local render was interrupted and its 60 s ran out before it was resumed' });
    expect(await stuck.runs()).toBe(0);
    // The verdict is on disk: any process asking next says the same, and renders nothing either.
    expect(await readdir(join(workDir, handle.id))).toContain('failed.json');
    expect(await provider({ ffmpegPath: stuck.path, taskTimeoutMs: 10 * 60_000 }).status(handle, { signal: never })).toEqual(status);
    expect(await stuck.runs()).toBe(0);
  });

  it('gives a resumed render only what is left of its time since the task was created', async () => {
    const stuck = await stuckFfmpeg(0.5);
    const handle = await leftBehind(workDir, brief(), 2_000);
    const restarted = provider({ ffmpegPath: stuck.path, taskTimeoutMs: 3_000 });
    const started = performance.now();
    expect((await restarted.status(handle, { signal: never })).state).toMatch(/QUEUED|RUNNING/);
    const { final } = await settle(restarted, handle);
    const took = performance.now() - started;
    expect(final).toEqual({ state: 'FAILED', message: 'The local renderer took longer than 3 s and was stopped' });
    expect(await stuck.runs()).toBe(1);
    // About the 1 s left of its 3 s, not 3 s afresh.
    expect(took).toBeLessThan(2_000);
    expect(await ffmpegChildren()).toEqual([]);
  });

  it('cancels a running render by killing its ffmpeg, and a queued one before it starts: FAILED here, and for a fresh process on the same folder, which renders neither', async () => {
    const dir = join(root, 'cancel');
    const stuck = await stuckFfmpeg(0.5);
    const p = provider({ workDir: dir, ffmpegPath: stuck.path, maxConcurrentRenders: 1 });
    const [running, queued] = [await p.create(brief(), { signal: never }), await p.create(brief(), { signal: never })];
    await vi.waitFor(async () => expect(await ffmpegChildren()).toHaveLength(1), { timeout: 10_000, interval: 10 });
    expect((await p.status(queued, { signal: never })).state).toBe('QUEUED');
    const cancelled = { state: 'FAILED', message: 'The local render was cancelled', code: 'CANCELLED' };

    await p.cancel(queued, { signal: never });
    expect(await p.status(queued, { signal: never })).toEqual(cancelled);
    await p.cancel(running, { signal: never });
    expect(await ffmpegChildren()).toEqual([]);
    expect(await p.status(running, { signal: never })).toEqual(cancelled);
    // Only the first one ever started, and the slot it freed went to no one.
    expect(await stuck.runs()).toBe(1);
    for (const handle of [running, queued]) {
      const files = await readdir(join(dir, handle.id));
      expect(files).toContain('failed.json');
      expect(files.filter((f) => f.endsWith('.mp4'))).toEqual([]);
    }

    const fresh = provider({ workDir: dir, ffmpegPath: stuck.path });
    for (const handle of [running, queued]) expect(await fresh.status(handle, { signal: never })).toEqual(cancelled);
    // A second cancel, here or there, finds the task ended.
    await p.cancel(running, { signal: never });
    await fresh.cancel(queued, { signal: never });
    expect(await stuck.runs()).toBe(1);
    expect(await ffmpegChildren()).toEqual([]);
  });

  it('cancels an interrupted render no process runs, so none resumes it; a task that ended, or is gone, keeps its verdict', async () => {
    const stuck = await stuckFfmpeg(0.5);
    const p = provider({ ffmpegPath: stuck.path });
    const interrupted = await leftBehind(workDir, brief(), 1_000);
    await p.cancel(interrupted, { signal: never });
    const cancelled = { state: 'FAILED', message: 'The local render was cancelled', code: 'CANCELLED' };
    expect(await p.status(interrupted, { signal: never })).toEqual(cancelled);
    expect(await provider({ ffmpegPath: stuck.path }).status(interrupted, { signal: never })).toEqual(cancelled);
    expect(await stuck.runs()).toBe(0);

    const broken = join(root, 'failing-ffmpeg.sh');
    await writeFile(broken, '#!/bin/sh\nexit 3\n');
    await chmod(broken, 0o755);
    const failing = provider({ ffmpegPath: broken });
    const failed = await failing.create(brief(), { signal: never });
    const verdict = (await settle(failing, failed)).final;
    expect(verdict).toMatchObject({ state: 'FAILED', message: 'The local renderer failed (ffmpeg exited with code 3)' });
    await failing.cancel(failed, { signal: never });
    expect(await failing.status(failed, { signal: never })).toEqual(verdict);
    expect(await provider().status(failed, { signal: never })).toEqual(verdict);
    await expect(p.cancel({ id: randomUUID() }, { signal: never })).resolves.toBeUndefined();
    await expect(p.cancel({ id: '../x' }, { signal: never })).rejects.toMatchObject({ reason: 'REFUSED' });
  });

  it('never deletes the folder of a task it is rendering, however abandoned the folder looks', async () => {
    const dir = join(root, 'cleanup-while-rendering');
    const stuck = await stuckFfmpeg(0.5);
    const p = provider({ workDir: dir, ffmpegPath: stuck.path, keepFinishedMs: 0, taskTimeoutMs: 60_000 });
    const handle = await p.create(brief(), { signal: never });
    await vi.waitFor(async () => expect(await stuck.runs()).toBe(1), { timeout: 10_000, interval: 10 });
    // As if written long ago (a folder restored from a backup keeps its times).
    const longAgo = new Date(Date.now() - 24 * 3_600_000);
    await utimes(join(dir, handle.id, 'brief.json'), longAgo, longAgo);
    await utimes(join(dir, handle.id), longAgo, longAgo);
    // Each create cleans up first; the statuses race it, as the worker's polls would.
    const [other] = await Promise.all([p.create(brief(), { signal: never }), p.status(handle, { signal: never }), p.status(handle, { signal: never })]);
    expect((await readdir(dir)).sort()).toEqual([handle.id, other.id].sort());
    expect((await p.status(handle, { signal: never })).state).toBe('RUNNING');
    await p.close();
  });

  it('fetches the narration from its own link only: no redirect is followed, and a refused answer\'s body is let go', async () => {
    const p = provider();
    const base = narrationUrl.replace('/narration.wav', '');
    const closedBefore = refusedClosed;
    const [moved, refused] = await Promise.all([
      renderToFile(p, brief({ durationSeconds: 8, narration: { url: `${base}/moved/narration.wav`, contentType: 'audio/wav' } })),
      renderToFile(p, brief({ durationSeconds: 8, narration: { url: `${base}/refused.wav`, contentType: 'audio/wav' } })),
    ]);
    expect(otherHostRequests).toBe(0);
    // Silent, at the asked length (the narration would have made it 6 s).
    for (const { file } of [moved, refused]) {
      expect((await probe(file)).seconds).toBeCloseTo(8, 0);
      expect(await maxVolumeDb(file)).toBeLessThan(-80);
    }
    // The 403's body never ends: its connection closes only because the renderer cancelled it.
    await vi.waitFor(() => expect(refusedClosed).toBe(closedBefore + 1), { timeout: 3_000, interval: 20 });
  });

  it('a restarted process finds a finished render on disk', async () => {
    const { handle, bytes } = await renderToFile(provider(), brief());
    const restarted = provider();
    expect(await restarted.status(handle, { signal: never })).toEqual({ state: 'SUCCEEDED', videoUrl: `local:${handle.id}` });
    expect((await download(restarted, `local:${handle.id}`)).equals(bytes)).toBe(true);
  });

  it('refuses URLs and handles that do not name one of its own finished tasks', async () => {
    const p = provider();
    const { handle } = await renderToFile(p, brief());
    const foreign = [
      'https://example.com/video.mp4',
      'file:///etc/passwd',
      'local:../../../../etc/passwd',
      `local:${handle.id}/../../x`,
      `local:${handle.id.toUpperCase()}`,
      `local:${randomUUID()}`,
      `${handle.id}`,
    ];
    for (const url of foreign) {
      await expect(p.download(url, { signal: never }), url).rejects.toMatchObject({ name: 'VideoProviderError', reason: 'REFUSED' });
    }
    await expect(p.status({ id: '../x' }, { signal: never })).rejects.toBeInstanceOf(VideoProviderError);
    await expect(p.status({ id: randomUUID() }, { signal: never })).rejects.toMatchObject({ reason: 'REFUSED' });
  });

  it('runs no more renders at once than it has slots; the rest wait QUEUED and all succeed', async () => {
    const p = provider({ maxConcurrentRenders: 1 });
    const handles = await Promise.all([1, 2, 3].map(() => p.create(brief({ durationSeconds: 5 }), { signal: never })));
    const rounds: TaskStatus['state'][][] = [];
    let mostProcesses = 0;
    await vi.waitFor(
      async () => {
        const states = (await Promise.all(handles.map((h) => p.status(h, { signal: never })))).map((s) => s.state);
        rounds.push(states);
        mostProcesses = Math.max(mostProcesses, (await ffmpegChildren()).length);
        if (!states.every((s) => s === 'SUCCEEDED')) throw new Error(`not done: ${states.join(',')}`);
      },
      { timeout: 30_000, interval: 20 },
    );
    expect(rounds[0]!.filter((s) => s === 'QUEUED').length).toBeGreaterThanOrEqual(1);
    for (const states of rounds) expect(states.filter((s) => s === 'RUNNING').length).toBeLessThanOrEqual(1);
    expect(mostProcesses).toBeLessThanOrEqual(1);
  });

  it('leaves nothing behind when create is aborted', async () => {
    const p = provider();
    const before = await readdir(workDir);
    await expect(p.create(brief(), { signal: AbortSignal.abort() })).rejects.toThrow();
    const controller = new AbortController();
    const pending = p.create(brief(), { signal: controller.signal });
    controller.abort(new Error('caller gave up'));
    await expect(pending).rejects.toThrow('caller gave up');
    expect(await readdir(workDir)).toEqual(before);
    expect(await ffmpegChildren()).toEqual([]);
  });

  it('reports an ffmpeg failure as FAILED with a safe message, also after a restart', async () => {
    const fake = join(root, 'broken-ffmpeg.sh');
    await writeFile(fake, '#!/bin/sh\necho "fatal: cannot open /very/secret/path" >&2\nexit 3\n');
    await chmod(fake, 0o755);
    const broken = provider({ ffmpegPath: fake });
    const handle = await broken.create(brief(), { signal: never });
    const failed = { state: 'FAILED', message: 'The local renderer failed (ffmpeg exited with code 3)' };
    expect((await settle(broken, handle)).final).toEqual(failed);
    // A verdict on disk is final: a restarted process (with a working ffmpeg) does not render it again.
    expect(await provider().status(handle, { signal: never })).toEqual(failed);
    expect((await readdir(join(workDir, handle.id))).filter((f) => f.endsWith('.mp4'))).toEqual([]);
  });

  it('deletes task folders finished long ago and abandoned ones when a task is created, and nothing else', async () => {
    const dir = join(root, 'cleanup');
    const hoursAgo = (h: number) => new Date(Date.now() - h * 3_600_000);
    const task = async (files: string[], age: number) => {
      const id = randomUUID();
      await mkdir(join(dir, id), { recursive: true });
      for (const f of files) {
        await writeFile(join(dir, id, f), '{}');
        await utimes(join(dir, id, f), hoursAgo(age), hoursAgo(age));
      }
      return id;
    };
    const oldDone = await task(['brief.json', 'video.mp4'], 2);
    const oldFailed = await task(['brief.json', 'failed.json'], 2);
    const abandoned = await task(['brief.json'], 3);
    const recentDone = await task(['brief.json', 'video.mp4'], 0.1);
    const running = await task(['brief.json'], 0.5);
    await mkdir(join(dir, 'not-a-task'));
    await utimes(join(dir, 'not-a-task'), hoursAgo(48), hoursAgo(48));

    const p = provider({ workDir: dir, keepFinishedMs: 3_600_000, taskTimeoutMs: 30 * 60_000 });
    const { id } = await p.create(brief(), { signal: never });
    const left = await readdir(dir);
    expect(left.sort()).toEqual([id, recentDone, running, 'not-a-task'].sort());
    expect(left).not.toContain(oldDone);
    expect(left).not.toContain(oldFailed);
    expect(left).not.toContain(abandoned);
    await settle(p, { id });
  });
});
