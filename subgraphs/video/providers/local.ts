/**
 * The offline video provider: title cards (story, characters, a "made locally" ending) over the
 * narration, rendered by ffmpeg, so the video flow works end to end without any key.
 *
 * A task is a folder under `workDir` named by its id, holding `brief.json` from the moment
 * create() returns and `video.mp4` (or `failed.json`) once done. The disk is the truth that
 * survives a restart: a process that does not know a task looks there, and re-renders from the
 * stored brief when the render died with its process, if the task's time has not run out.
 * Renders beyond `maxConcurrentRenders` wait their turn (QUEUED). A cancelled task gets a
 * `failed.json` too, so no process renders it again.
 */
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { mkdir, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { FfmpegError, resolveFfmpegPath } from './ffmpeg.js';
import { renderBrief, VIDEO_FILE, type RenderSettings } from './local-render.js';
import { VideoProviderError, type TaskHandle, type TaskStatus, type VideoBrief, type VideoProvider } from './provider.js';

export interface LocalVideoProviderOptions {
  /** Where task folders live; created when missing. Give the provider a folder of its own: it deletes old task folders in it. */
  workDir: string;
  ffmpegPath?: string;
  /** A font file for drawtext (default: DejaVu Sans from the dejavu-fonts-ttf package). */
  fontPath?: string;
  /** Default: `fontPath` when given, else DejaVu Sans Bold. */
  boldFontPath?: string;
  pollIntervalMs: number;
  /** Also the render's own deadline, from the task's creation: past it ffmpeg is killed and the task FAILED. */
  taskTimeoutMs: number;
  /** ffmpeg processes at once (default: one per core); the rest wait as QUEUED. */
  maxConcurrentRenders?: number;
  /** Short side of the frame in pixels (default 360: 640x360, 360x640 or 360x360). */
  shortSide?: number;
  fps?: number;
  /** Longest video (default 120 s): a longer narration is cut, with a fade. */
  maxSeconds?: number;
  narrationTimeoutMs?: number;
  narrationMaxBytes?: number;
  /** How long a finished task's folder is kept for download (default 1 h). */
  keepFinishedMs?: number;
}

export interface LocalVideoProvider extends VideoProvider {
  /**
   * Kills the task's render if this process runs it (or takes it out of the wait for a slot), and
   * writes its verdict, so its status is FAILED (code CANCELLED) and no process renders it again.
   */
  cancel(handle: TaskHandle, options: { signal: AbortSignal }): Promise<void>;
  /** Kills running renders and refuses further calls; their folders stay, so the next process resumes them. */
  close(): Promise<void>;
}

const TASK_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const URL_PREFIX = 'local:';
const BRIEF_FILE = 'brief.json';
const FAILED_FILE = 'failed.json';
const CANCELLED_MESSAGE = 'The local render was cancelled';
const cancelledStatus = (): TaskStatus => ({ state: 'FAILED', message: CANCELLED_MESSAGE, code: 'CANCELLED' });

interface Task {
  status: TaskStatus;
  /** Aborts this process's render of the task: cancel(). */
  readonly stop: AbortController;
  /** Settles once the render has stopped (its ffmpeg gone). */
  done: Promise<void>;
}

export function createLocalVideoProvider(options: LocalVideoProviderOptions): LocalVideoProvider {
  const fonts = join(dirname(createRequire(import.meta.url).resolve('dejavu-fonts-ttf/package.json')), 'ttf');
  const settings: RenderSettings = {
    ffmpegPath: resolveFfmpegPath(options.ffmpegPath),
    fontPath: options.fontPath ?? join(fonts, 'DejaVuSans.ttf'),
    boldFontPath: options.boldFontPath ?? options.fontPath ?? join(fonts, 'DejaVuSans-Bold.ttf'),
    shortSide: options.shortSide ?? 360,
    fps: options.fps ?? 24,
    maxSeconds: options.maxSeconds ?? 120,
    narrationTimeoutMs: options.narrationTimeoutMs ?? 15_000,
    narrationMaxBytes: options.narrationMaxBytes ?? 50 * 1024 * 1024,
  };
  const keepFinishedMs = options.keepFinishedMs ?? 60 * 60 * 1000;
  const slots = createSlots(options.maxConcurrentRenders ?? availableParallelism());
  const tasks = new Map<string, Task>();
  const running = new Set<Promise<void>>();
  /** Tasks whose render runs in this process: cleanup never deletes their folders. */
  const rendering = new Set<string>();
  /** Task folders cleanup is deleting right now: a status call that read one before it went starts no render in it. */
  const removing = new Set<string>();
  /**
   * Tasks cancelled in this process: a status call that read the disk before cancel() wrote its
   * verdict starts no render of them. Forgotten when cleanup deletes their folders.
   */
  const cancelled = new Set<string>();
  const closing = new AbortController();
  let cleaning: Promise<void> | null = null;

  const folder = (id: string) => join(options.workDir, id);
  const checkOpen = () => {
    if (closing.signal.aborted) throw new VideoProviderError('UNAVAILABLE', 'The local video renderer is shutting down');
  };

  /** Starts rendering task `id`, created at `createdAt` (epoch ms): its deadline runs from then. */
  function start(id: string, brief: VideoBrief, createdAt: number): Task {
    const task: Task = { status: { state: 'QUEUED' }, stop: new AbortController(), done: Promise.resolve() };
    tasks.set(id, task);
    rendering.add(id);
    const run = render(id, brief, task, createdAt).finally(() => {
      rendering.delete(id);
      running.delete(run);
    });
    running.add(run);
    task.done = run;
    return task;
  }

  async function render(id: string, brief: VideoBrief, task: Task, createdAt: number): Promise<void> {
    // From the task's creation, not from this render: a render resumed after a restart has only
    // what is left of the time the worker gives the task.
    const deadline = AbortSignal.timeout(Math.max(0, Math.ceil(createdAt + options.taskTimeoutMs - Date.now())));
    const signal = AbortSignal.any([closing.signal, deadline, task.stop.signal]);
    let release: (() => void) | undefined;
    try {
      release = await slots.acquire(signal);
      task.status = { state: 'RUNNING', progress: 0 };
      await renderBrief(brief, folder(id), settings, { signal, onProgress: (progress) => (task.status = { state: 'RUNNING', progress }) });
      task.status = { state: 'SUCCEEDED', videoUrl: `${URL_PREFIX}${id}` };
    } catch (error) {
      // Stopped by cancel(), which writes the verdict (and says so when it cannot).
      if (task.stop.signal.aborted) return void (task.status = cancelledStatus());
      // Killed by close(): no verdict on disk, so whichever process asks next renders it again.
      if (closing.signal.aborted) return void tasks.delete(id);
      const message = deadline.aborted
        ? `The local renderer took longer than ${Math.round(options.taskTimeoutMs / 1000)} s and was stopped`
        : error instanceof FfmpegError
          ? `The local renderer failed (ffmpeg exited with ${error.exitCode !== null ? `code ${error.exitCode}` : `signal ${error.exitSignal}`})`
          : 'The local renderer could not make this video';
      const detail = error instanceof FfmpegError ? error.stderrTail : String(error);
      await writeFile(join(folder(id), FAILED_FILE), JSON.stringify({ message, detail })).catch(() => {});
      task.status = { state: 'FAILED', message };
    } finally {
      release?.();
    }
  }

  /** What the disk says of a task this process does not know, resuming an interrupted render. */
  async function statusFromDisk(id: string): Promise<TaskStatus> {
    const dir = folder(id);
    if (!(await exists(dir))) throw gone(id);
    if (await exists(join(dir, VIDEO_FILE))) return { state: 'SUCCEEDED', videoUrl: `${URL_PREFIX}${id}` };
    const failed = await readJson<{ message?: unknown; code?: unknown }>(join(dir, FAILED_FILE));
    if (failed) {
      const message = typeof failed.message === 'string' ? failed.message : 'The local renderer failed';
      return { state: 'FAILED', message, ...(typeof failed.code === 'string' ? { code: failed.code } : {}) };
    }
    const brief = await readJson<VideoBrief>(join(dir, BRIEF_FILE));
    // brief.json is written once, at creation: its mtime is when the task was created.
    const createdAt = await mtime(join(dir, BRIEF_FILE));
    if (!brief?.story || typeof brief.story.title !== 'string' || createdAt === null) return { state: 'FAILED', message: 'The local render was interrupted and its brief cannot be read to resume it' };
    if (Date.now() - createdAt > options.taskTimeoutMs) {
      // Its time ran out while no process rendered it: the worker has given up on it by now.
      const message = `The local render was interrupted and its ${Math.round(options.taskTimeoutMs / 1000)} s ran out before it was resumed`;
      await writeFile(join(dir, FAILED_FILE), JSON.stringify({ message, detail: 'expired before a process resumed it' })).catch(() => {});
      return { state: 'FAILED', message };
    }
    if (removing.has(id)) throw gone(id);
    if (cancelled.has(id)) return cancelledStatus();
    // Two status calls may have read the disk at once: only the first starts the render.
    return (tasks.get(id) ?? start(id, brief, createdAt)).status;
  }

  /** Deletes task folders finished more than `keepFinishedMs` ago, and abandoned ones no process finished. */
  async function cleanup(): Promise<void> {
    const now = Date.now();
    const entries = await readdir(options.workDir).catch(() => [] as string[]);
    for (const id of entries) {
      const state = tasks.get(id)?.status.state;
      if (!TASK_ID.test(id) || state === 'QUEUED' || state === 'RUNNING') continue;
      const dir = folder(id);
      const finished = (await mtime(join(dir, VIDEO_FILE))) ?? (await mtime(join(dir, FAILED_FILE)));
      const created = (await mtime(join(dir, BRIEF_FILE))) ?? (await mtime(dir));
      const stale = finished !== null ? now - finished > keepFinishedMs : created !== null && now - created > keepFinishedMs + options.taskTimeoutMs;
      // Asked again after the awaits above: a status call may have started rendering it meanwhile.
      if (!stale || rendering.has(id)) continue;
      tasks.delete(id);
      removing.add(id);
      await rm(dir, { recursive: true, force: true })
        .catch(() => {})
        .finally(() => removing.delete(id));
      cancelled.delete(id);
    }
  }

  return {
    name: 'local',
    pollIntervalMs: options.pollIntervalMs,
    taskTimeoutMs: options.taskTimeoutMs,

    async create(brief, { signal }) {
      checkOpen();
      signal.throwIfAborted();
      cleaning ??= cleanup().finally(() => (cleaning = null));
      await cleaning;
      const id = randomUUID();
      try {
        await mkdir(folder(id), { recursive: true });
        await writeFile(join(folder(id), BRIEF_FILE), JSON.stringify(brief));
      } catch {
        await rm(folder(id), { recursive: true, force: true }).catch(() => {});
        throw new VideoProviderError('UNAVAILABLE', 'The local video renderer cannot write its work folder');
      }
      if (signal.aborted || closing.signal.aborted) {
        await rm(folder(id), { recursive: true, force: true });
        checkOpen();
        throw signal.reason;
      }
      start(id, brief, Date.now());
      return { id };
    },

    async status(handle: TaskHandle, { signal }) {
      checkOpen();
      signal.throwIfAborted();
      if (!TASK_ID.test(handle.id)) throw new VideoProviderError('REFUSED', 'Not a local render task id');
      return tasks.get(handle.id)?.status ?? statusFromDisk(handle.id);
    },

    async cancel(handle: TaskHandle, { signal }) {
      checkOpen();
      signal.throwIfAborted();
      if (!TASK_ID.test(handle.id)) throw new VideoProviderError('REFUSED', 'Not a local render task id');
      const { id } = handle;
      // Before any await: from now on no status call of this process starts rendering it.
      cancelled.add(id);
      const task = tasks.get(id);
      if (task && rendering.has(id)) {
        // Kills its ffmpeg (or takes it out of the wait for a slot); done settles once ffmpeg is gone.
        task.stop.abort();
        await task.done;
      }
      // It ended before the abort could stop it: its verdict or its video stands.
      const ended = task?.status.state === 'SUCCEEDED' || (task?.status.state === 'FAILED' && task.status.code !== 'CANCELLED');
      if (ended) return;
      // The disk decides for a task this process does not render (a render in another process
      // cannot be reached from here: it runs its course). The verdict written here keeps every
      // process from rendering the task again, and makes its status FAILED everywhere.
      const dir = folder(id);
      if (!(await exists(dir))) return void cancelled.delete(id); // cleaned up: nothing to stop
      if ((await exists(join(dir, VIDEO_FILE))) || (await exists(join(dir, FAILED_FILE)))) return;
      await writeFile(join(dir, FAILED_FILE), JSON.stringify({ message: CANCELLED_MESSAGE, code: 'CANCELLED', detail: 'cancelled' })).catch(async () => {
        if (await exists(dir)) throw new VideoProviderError('UNAVAILABLE', 'The local video renderer cannot write its work folder');
      });
    },

    async download(videoUrl, { signal }) {
      checkOpen();
      signal.throwIfAborted();
      const id = videoUrl.startsWith(URL_PREFIX) ? videoUrl.slice(URL_PREFIX.length) : '';
      // The id must be exactly a task id, so no URL reaches outside its own task folder.
      if (!TASK_ID.test(id)) throw new VideoProviderError('REFUSED', 'Not a video of the local renderer');
      const file = await open(join(folder(id), VIDEO_FILE), 'r').catch(() => {
        throw new VideoProviderError('REFUSED', `The local video ${id} is gone (cleaned up, or never finished)`);
      });
      const body = file.createReadStream();
      const onAbort = () => body.destroy(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      body.once('close', () => signal.removeEventListener('abort', onAbort));
      return { body, contentType: 'video/mp4' };
    },

    async close() {
      closing.abort(new VideoProviderError('UNAVAILABLE', 'The local video renderer is shutting down'));
      await Promise.all(running);
    },
  };
}

function gone(id: string): VideoProviderError {
  return new VideoProviderError('REFUSED', `Local render task ${id} is unknown: its folder is gone (cleaned up, or made on another machine)`);
}

/** A counting semaphore; a waiter whose signal aborts leaves the queue. */
function createSlots(size: number) {
  let free = Math.max(1, Math.floor(size));
  const waiting: (() => void)[] = [];
  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else free++;
  };
  return {
    acquire(signal: AbortSignal): Promise<() => void> {
      signal.throwIfAborted();
      if (free > 0) {
        free--;
        return Promise.resolve(release);
      }
      return new Promise((resolve, reject) => {
        const grant = () => {
          signal.removeEventListener('abort', onAbort);
          resolve(release);
        };
        const onAbort = () => {
          waiting.splice(waiting.indexOf(grant), 1);
          reject(signal.reason);
        };
        waiting.push(grant);
        signal.addEventListener('abort', onAbort, { once: true });
      });
    },
  };
}

async function exists(path: string): Promise<boolean> {
  return (await mtime(path)) !== null;
}

async function mtime(path: string): Promise<number | null> {
  return stat(path).then(
    (s) => s.mtimeMs,
    () => null,
  );
}

async function readJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch {
    return null;
  }
}
