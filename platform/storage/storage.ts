import { Readable } from 'node:stream';

/**
 * The port every blob store implements: local disk in the all-in-one default, S3 (or an
 * S3-compatible store) in production. Both pass one contract suite (storage.contract.ts), so
 * code above this interface cannot tell them apart.
 */
export interface BlobStorage {
  readonly kind: 'local' | 's3';
  /**
   * Stores `body` under `key` (see `assertValidKey`: [A-Za-z0-9._-] segments of at most 200
   * characters separated by '/', no '..', at most 512 characters; an invalid key is a programming error and
   * throws a TypeError). Streams; if more than `maxBytes` arrive it stops reading, removes what
   * it wrote and throws ObjectTooLarge, leaving any earlier object under `key` as it was. A
   * stream body is left paused, not destroyed: its owner decides what happens to it (an HTTP
   * handler answers 413 and closes the connection). Atomic: a reader sees the previous object or
   * this one, never half of one.
   */
  put(key: string, body: NodeJS.ReadableStream | Buffer, options: { contentType: string; maxBytes?: number }): Promise<StoredObject>;
  /** null when absent. Consume or destroy `body`: it holds a file or a connection open. */
  read(key: string): Promise<{ body: NodeJS.ReadableStream; size: number; contentType: string } | null>;
  head(key: string): Promise<StoredObject | null>;
  /** Absent is fine. */
  delete(key: string): Promise<void>;
  /**
   * A URL anyone holding it can GET until it expires (`expiresInSeconds`: 1 to 604800, S3's
   * limit for presigned URLs). With `filename`, the response carries a Content-Disposition.
   */
  downloadUrl(key: string, options: { expiresInSeconds: number; filename?: string }): Promise<string>;
}

export interface StoredObject {
  key: string;
  size: number;
  contentType: string;
}

/** Thrown by `put` when the body passes `maxBytes`; nothing is left stored when thrown. */
export class ObjectTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`Object exceeds ${limit} bytes`);
    this.name = 'ObjectTooLarge';
  }
}

export const MAX_KEY_LENGTH = 512;
/** A segment is a file name on disk, where 255 bytes is the usual limit, less the sidecar suffix. */
export const MAX_KEY_SEGMENT_LENGTH = 200;
/** S3 refuses presigned URLs valid for longer than seven days; local URLs keep the same bound. */
export const MAX_URL_EXPIRY_SECONDS = 7 * 24 * 3600;

const KEY_PATTERN = /^[A-Za-z0-9._-]+(?:\/[A-Za-z0-9._-]+)*$/;

/** Whether `key` is one the stores accept; the local file handler uses it on untrusted paths. */
export function isValidKey(key: string): boolean {
  // '..' anywhere, not only as a segment: stricter than needed, and easy to state. A '.' segment
  // would give two keys one file on disk.
  return (
    key.length <= MAX_KEY_LENGTH &&
    KEY_PATTERN.test(key) &&
    !key.includes('..') &&
    key.split('/').every((segment) => segment !== '.' && segment.length <= MAX_KEY_SEGMENT_LENGTH)
  );
}

/**
 * Keys are [A-Za-z0-9._-] segments of at most 200 characters separated by '/', with no '..', at
 * most 512 characters in all: the same key is a safe relative path on disk and needs no escaping
 * in an S3 or local URL.
 */
export function assertValidKey(key: string): void {
  if (typeof key !== 'string' || !isValidKey(key)) {
    throw new TypeError(`Invalid object key ${JSON.stringify(String(key).slice(0, 80))}: use [A-Za-z0-9._-] segments of at most ${MAX_KEY_SEGMENT_LENGTH} characters separated by '/', no '..', at most ${MAX_KEY_LENGTH} characters`);
  }
}

// type "/" subtype, optionally "; parameters" without control characters: what ends up in a
// Content-Type header, so nothing that could split it.
const CONTENT_TYPE_PATTERN = /^[A-Za-z0-9!#$&^_.+-]+\/[A-Za-z0-9!#$&^_.+-]+(?:\s*;[\x20-\x7e]*)?$/;

export function assertValidContentType(contentType: string): void {
  if (typeof contentType !== 'string' || contentType.length > 200 || !CONTENT_TYPE_PATTERN.test(contentType)) {
    throw new TypeError(`Invalid content type ${JSON.stringify(String(contentType).slice(0, 80))}`);
  }
}

export function assertValidMaxBytes(maxBytes: number | undefined): void {
  if (maxBytes !== undefined && (!Number.isSafeInteger(maxBytes) || maxBytes < 0)) {
    throw new TypeError(`maxBytes must be a non-negative integer, got ${maxBytes}`);
  }
}

export function assertValidDownloadOptions(options: { expiresInSeconds: number; filename?: string }): void {
  const { expiresInSeconds, filename } = options;
  if (!Number.isSafeInteger(expiresInSeconds) || expiresInSeconds < 1 || expiresInSeconds > MAX_URL_EXPIRY_SECONDS) {
    throw new TypeError(`expiresInSeconds must be an integer from 1 to ${MAX_URL_EXPIRY_SECONDS}, got ${expiresInSeconds}`);
  }
  // Control characters are refused rather than stripped: the filename is signed as given.
  if (filename !== undefined && (typeof filename !== 'string' || filename.length === 0 || filename.length > 255 || /[\x00-\x1f\x7f]/.test(filename))) {
    throw new TypeError(`Invalid download filename ${JSON.stringify(String(filename).slice(0, 80))}`);
  }
}

/**
 * `attachment` with an ASCII `filename` for old clients (without '%', which some of them
 * percent-decode) and the exact name in `filename*`
 * (RFC 6266 section 4.3; RFC 8187 for the encoding, whose attr-char excludes ' ( ) *).
 */
export function contentDisposition(filename: string): string {
  const fallback = filename.replace(/[^\x20-\x7e]|["\\%]/g, '_');
  const encoded = encodeURIComponent(filename).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}

/** A stored object's whole body (samples and narration parts are bounded, so this fits in memory). */
export async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  return Buffer.concat(chunks);
}

/**
 * Called first thing by a put that awaits before reading its body: a stream that fails in the
 * meantime (a client going away) must not emit an 'error' nobody listens to, which would crash
 * the process. The error stays on the stream (`errored`) for forEachChunk to throw.
 */
export function holdStreamErrors(body: NodeJS.ReadableStream | Buffer): void {
  if (!Buffer.isBuffer(body)) body.on('error', () => {});
}

/**
 * Hands `body` to `sink` chunk by chunk, in order, waiting for each; throws ObjectTooLarge as
 * soon as more than `maxBytes` have arrived, before the chunk that passes it reaches `sink`.
 * Returns the byte count. The stream is paused, never destroyed, when this stops early.
 */
export async function forEachChunk(
  body: NodeJS.ReadableStream | Buffer,
  maxBytes: number,
  sink: (chunk: Buffer) => Promise<void> | void,
): Promise<number> {
  if (Buffer.isBuffer(body)) {
    if (body.length > maxBytes) throw new ObjectTooLarge(maxBytes);
    await sink(body);
    return body.length;
  }
  const readable = body instanceof Readable ? body : new Readable({ objectMode: false }).wrap(body);
  // A stream that failed before this got to read it (see holdStreamErrors) fails the put.
  if (readable.errored) throw readable.errored;
  let size = 0;
  // destroyOnReturn: false, so leaving the loop early pauses the owner's stream instead of
  // destroying it (a destroyed request takes its socket, and the 413, with it).
  for await (const piece of readable.iterator({ destroyOnReturn: false })) {
    const chunk: Buffer = Buffer.isBuffer(piece) ? piece : Buffer.from(piece as string | Uint8Array);
    size += chunk.length;
    if (size > maxBytes) {
      readable.pause();
      throw new ObjectTooLarge(maxBytes);
    }
    await sink(chunk);
  }
  return size;
}
