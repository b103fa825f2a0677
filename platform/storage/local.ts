import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import {
  assertValidContentType,
  assertValidDownloadOptions,
  assertValidKey,
  assertValidMaxBytes,
  contentDisposition,
  forEachChunk,
  holdStreamErrors,
  isValidKey,
  type BlobStorage,
  type StoredObject,
} from './storage.js';

export interface LocalDiskStorageOptions {
  /** Directory the objects live under; created as needed. */
  root: string;
  /**
   * Where signedFileHandler is mounted, e.g. 'http://127.0.0.1:4000/media/narration'; or a
   * function giving it when a link is made (a gateway on port 0 knows its address only later).
   */
  publicBaseUrl: string | (() => string);
  /** Signs download URLs; at least 32 characters. */
  secret: string;
  clock?: () => Date;
}

/** An object opened for reading: the size and type belong to the bytes `handle` reads. */
export interface OpenObject {
  handle: FileHandle;
  size: number;
  contentType: string;
}

export type DownloadGrant =
  | { ok: true; remainingSeconds: number; filename: string | undefined }
  | { ok: false; reason: string };

/**
 * The content type lives in a sidecar next to each file. '~' is outside the key alphabet, so no
 * key can name a sidecar or a temporary file.
 */
const META_SUFFIX = '~meta.json';
const SIGNATURE_DOMAIN = 'storyloom.download.v1';

/**
 * The sidecar names the exact file it describes (inode, size, mtime survive the rename), so a
 * reader can tell a matching pair from one caught between a writer's two renames.
 */
interface Meta {
  contentType: string;
  size: number;
  ino: number;
  mtimeMs: number;
}

/**
 * Objects as files under `root`, for the all-in-one mode on one machine. Each put writes a
 * temporary file in the target directory, fsyncs it and renames it over the old one, so readers
 * holding the old file keep reading it whole. Empty directories are left behind by delete:
 * removing them would race a put creating a file in them.
 */
export class LocalDiskStorage implements BlobStorage {
  readonly kind = 'local' as const;
  readonly root: string;
  private readonly baseUrl: () => string;
  private readonly secret: string;
  private readonly clock: () => Date;
  /** Renames and deletes of one key, one at a time: two puts interleaving their renames would pair one's bytes with the other's sidecar. */
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(options: LocalDiskStorageOptions) {
    if (!options.root) throw new TypeError('LocalDiskStorage needs a root directory');
    if (typeof options.secret !== 'string' || options.secret.length < 32) {
      throw new TypeError('LocalDiskStorage secret must be at least 32 characters');
    }
    const given = options.publicBaseUrl;
    this.baseUrl = typeof given === 'string' ? () => given : given;
    if (typeof given === 'string') checkBaseUrl(given);
    this.root = resolve(options.root);
    this.secret = options.secret;
    this.clock = options.clock ?? (() => new Date());
  }

  async put(key: string, body: NodeJS.ReadableStream | Buffer, options: { contentType: string; maxBytes?: number }): Promise<StoredObject> {
    assertValidKey(key);
    assertValidContentType(options.contentType);
    assertValidMaxBytes(options.maxBytes);
    holdStreamErrors(body);
    const file = this.pathOf(key);
    const dir = dirname(file);
    // umask still applies to both modes: the operator's choice wins.
    await mkdir(dir, { recursive: true, mode: 0o755 });
    const temp = join(dir, `.~${randomBytes(8).toString('hex')}`);
    const tempData = `${temp}.tmp`;
    const tempMeta = `${temp}.meta.tmp`;
    try {
      const handle = await open(tempData, 'wx', 0o644);
      let meta: Meta;
      try {
        const size = await forEachChunk(body, options.maxBytes ?? Infinity, async (chunk) => {
          for (let offset = 0; offset < chunk.length; ) offset += (await handle.write(chunk, offset)).bytesWritten;
        });
        // Without the fsync a crash soon after the rename can leave an empty or partial file
        // under the final name on some filesystems.
        await handle.sync();
        const stat = await handle.stat();
        meta = { contentType: options.contentType, size, ino: stat.ino, mtimeMs: stat.mtimeMs };
      } finally {
        await handle.close();
      }
      await writeFile(tempMeta, JSON.stringify(meta), { flag: 'wx', mode: 0o644 });
      // Sidecar first: a reader between the two renames of a new key finds no file (absent);
      // of an existing key, a sidecar that does not match the file, and retries.
      await this.exclusive(key, async () => {
        await rename(tempMeta, `${file}${META_SUFFIX}`);
        await rename(tempData, file);
      });
      return { key, size: meta.size, contentType: meta.contentType };
    } catch (error) {
      await Promise.all([rm(tempData, { force: true }), rm(tempMeta, { force: true })]);
      throw error;
    }
  }

  async read(key: string): Promise<{ body: NodeJS.ReadableStream; size: number; contentType: string } | null> {
    assertValidKey(key);
    const object = await this.open(key);
    if (!object) return null;
    return { body: object.handle.createReadStream(), size: object.size, contentType: object.contentType };
  }

  async head(key: string): Promise<StoredObject | null> {
    assertValidKey(key);
    const object = await this.open(key);
    if (!object) return null;
    await object.handle.close();
    return { key, size: object.size, contentType: object.contentType };
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    const file = this.pathOf(key);
    // The file before its sidecar: from the first unlink on, readers find nothing.
    await this.exclusive(key, async () => {
      await rm(file, { force: true });
      await rm(`${file}${META_SUFFIX}`, { force: true });
    });
  }

  async downloadUrl(key: string, options: { expiresInSeconds: number; filename?: string }): Promise<string> {
    assertValidKey(key);
    assertValidDownloadOptions(options);
    const expires = Math.floor(this.clock().getTime() / 1000) + options.expiresInSeconds;
    const query = new URLSearchParams({ expires: String(expires), signature: this.sign(key, expires, options.filename) });
    if (options.filename !== undefined) query.set('filename', options.filename);
    // Keys need no escaping in a path: their alphabet is all unreserved characters.
    return `${this.publicBaseUrl}/files/${key}?${query}`;
  }

  /** Where download links point, without a trailing slash. */
  get publicBaseUrl(): string {
    const url = this.baseUrl();
    checkBaseUrl(url);
    return url.replace(/\/+$/, '');
  }

  /**
   * Opens the file under `key` with the content type that belongs to it, or null when absent.
   * For signedFileHandler, which needs the open file to serve ranges; close `handle` or read it
   * through a stream that closes it.
   */
  async open(key: string): Promise<OpenObject | null> {
    assertValidKey(key);
    const file = this.pathOf(key);
    for (let attempt = 0; ; attempt++) {
      let handle: FileHandle;
      try {
        handle = await open(file, 'r');
      } catch (error) {
        if (isMissing(error)) return null;
        throw error;
      }
      try {
        const stat = await handle.stat();
        // A key that is a prefix of other keys ('a' of 'a/b') is a directory here, not an object.
        if (!stat.isFile()) {
          await handle.close();
          return null;
        }
        const meta = await readMeta(`${file}${META_SUFFIX}`);
        if (meta && meta.ino === stat.ino && meta.size === stat.size && meta.mtimeMs === stat.mtimeMs) {
          return { handle, size: stat.size, contentType: meta.contentType };
        }
        // A writer is between its two renames (a microsecond window), or crashed there. After a
        // few tries it is the crash: the bytes are whole, only their type is lost.
        if (attempt >= 4) return { handle, size: stat.size, contentType: 'application/octet-stream' };
      } catch (error) {
        await handle.close();
        throw error;
      }
      await handle.close();
      await new Promise((resolve) => setTimeout(resolve, 2 ** attempt));
    }
  }

  /** Checks a download URL's query for `key`: signature first, in constant time, then expiry. */
  verifyDownload(key: string, query: URLSearchParams): DownloadGrant {
    const expiresText = query.get('expires') ?? '';
    const signature = query.get('signature') ?? '';
    const filename = query.get('filename') ?? undefined;
    if (!/^\d{1,15}$/.test(expiresText) || !signature) return { ok: false, reason: 'The link is missing its signature or expiry' };
    const expires = Number(expiresText);
    const expected = Buffer.from(this.sign(key, expires, filename));
    const given = Buffer.from(signature);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'The link signature is not valid' };
    const remainingSeconds = expires - Math.floor(this.clock().getTime() / 1000);
    if (remainingSeconds < 0) return { ok: false, reason: 'The link has expired' };
    return { ok: true, remainingSeconds, filename };
  }

  private sign(key: string, expires: number, filename: string | undefined): string {
    // A JSON array keeps the parts apart (no key or filename can forge a separator), and the
    // domain keeps these signatures from meaning anything elsewhere the secret is used.
    const payload = JSON.stringify([SIGNATURE_DOMAIN, key, expires, filename ?? null]);
    return createHmac('sha256', this.secret).update(payload).digest('base64url');
  }

  private pathOf(key: string): string {
    return join(this.root, ...key.split('/'));
  }

  private async exclusive<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(key) ?? Promise.resolve();
    const run = previous.then(work, work);
    const settled = run.catch(() => undefined);
    this.locks.set(key, settled);
    try {
      return await run;
    } finally {
      if (this.locks.get(key) === settled) this.locks.delete(key);
    }
  }
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

async function readMeta(path: string): Promise<Meta | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (isMissing(error)) return null;
    throw error;
  }
  try {
    const meta = JSON.parse(text) as Partial<Meta>;
    const valid =
      typeof meta.contentType === 'string' && typeof meta.size === 'number' && typeof meta.ino === 'number' && typeof meta.mtimeMs === 'number';
    return valid ? (meta as Meta) : null;
  } catch {
    // Torn by a crash: treated like a sidecar that does not match.
    return null;
  }
}

function sendFailure(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({ error: { code, message } });
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(body);
}

/** The key in a request path, or null when it is not one a store could hold. */
function keyOfPath(path: string): string | null {
  let key: string;
  try {
    // Decoded once, then held to the key alphabet: '%2e%2e' becomes '..' and is refused, and
    // '%252e' becomes '%2e', whose '%' is refused.
    key = decodeURIComponent(path.split('?')[0] ?? '');
  } catch {
    return null;
  }
  return isValidKey(key) ? key : null;
}

type RangeRequest = { start: number; end: number } | 'unsatisfiable' | null;

/**
 * One `bytes=a-b`, `a-` or `-n` range (RFC 9110 section 14.1.2). Anything else, several ranges
 * included, is ignored and the whole file served, which section 14.2 allows.
 */
function parseRange(header: string | undefined, size: number): RangeRequest {
  const match = header ? /^bytes=(\d*)-(\d*)$/.exec(header.trim()) : null;
  if (!match) return null;
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return null;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  if (last !== '' && Number(last) < start) return null;
  if (start >= size) return 'unsatisfiable';
  return { start, end: last === '' ? size - 1 : Math.min(Number(last), size - 1) };
}

/**
 * Serves the files behind LocalDiskStorage.downloadUrl links: mount it at
 * `<publicBaseUrl>/files/` and pass the rest of the path. Verifies the signature and expiry, then
 * streams the file, honouring a single Range (audio players seek with them).
 */
function checkBaseUrl(url: string): void {
  const base = new URL(url);
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new TypeError(`publicBaseUrl must be http(s), got ${base.protocol}`);
  if (base.search || base.hash) throw new TypeError('publicBaseUrl must not carry a query or fragment');
}

export function signedFileHandler(storage: LocalDiskStorage) {
  return async (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return sendFailure(res, 405, 'METHOD_NOT_ALLOWED', `${req.method} is not allowed here`, { allow: 'GET, HEAD' });
    }
    const key = keyOfPath(path);
    if (key === null) return sendFailure(res, 404, 'NOT_FOUND', 'No such file');
    const url = req.url ?? '';
    const queryAt = url.indexOf('?');
    const grant = storage.verifyDownload(key, new URLSearchParams(queryAt === -1 ? '' : url.slice(queryAt + 1)));
    // Checked before the file is looked up: an unsigned request learns nothing about what exists.
    if (!grant.ok) return sendFailure(res, 403, 'FORBIDDEN', grant.reason);

    const object = await storage.open(key);
    if (!object) return sendFailure(res, 404, 'NOT_FOUND', 'No such file');
    const { handle, size, contentType } = object;
    try {
      // Without validators to compare, an If-Range cannot be evaluated: the whole file is the
      // safe answer (RFC 9110 section 13.1.5).
      const range = req.headers['if-range'] === undefined ? parseRange(req.headers.range, size) : null;
      if (range === 'unsatisfiable') {
        await handle.close();
        return sendFailure(res, 416, 'RANGE_NOT_SATISFIABLE', `The file has ${size} bytes`, { 'content-range': `bytes */${size}` });
      }
      const headers: Record<string, string | number> = {
        'content-type': contentType,
        'cache-control': `private, max-age=${grant.remainingSeconds}`,
        'accept-ranges': 'bytes',
        // Uploaded bytes from our own origin: a browser must not sniff them into HTML.
        'x-content-type-options': 'nosniff',
      };
      if (grant.filename !== undefined) headers['content-disposition'] = contentDisposition(grant.filename);
      if (range) {
        headers['content-range'] = `bytes ${range.start}-${range.end}/${size}`;
        headers['content-length'] = range.end - range.start + 1;
      } else {
        headers['content-length'] = size;
      }
      res.writeHead(range ? 206 : 200, headers);
      if (req.method === 'HEAD' || size === 0) {
        await handle.close();
        res.end();
        return;
      }
      const stream = handle.createReadStream(range ?? {});
      await pipeline(stream, res).catch((error: unknown) => {
        // Players abort downloads whenever they seek: a normal ending, not a failure to log.
        if ((error as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE') throw error;
      });
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
  };
}
