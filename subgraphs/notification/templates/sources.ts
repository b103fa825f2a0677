import { realpath, open } from 'node:fs/promises';
import path from 'node:path';
import { describeTemplate, TemplateError, type TemplateDefinition } from './template.js';
import { isHttpUrl } from './validate.js';

export interface SourceOptions {
  /** The folder FILE templates live in; nothing outside it is read. */
  templatesDir: string;
  /** Injected for tests; the global fetch otherwise. */
  fetch?: typeof fetch;
  /** How long a fetched URL body is used before it is asked for again. */
  cacheTtlMs: number;
  /** The largest body read, from a file or a URL. */
  maxBytes: number;
  /** The deadline for one URL fetch, headers and body together. */
  timeoutMs: number;
  /** Where URL bodies are kept (the subgraph keeps one for the process). */
  cache: UrlCache;
  /** The clock for the TTL (STYLE 2). */
  now?: () => number;
}

/** The body's text, wherever it lives. INLINE is the definition's own; FILE and URL are read. */
export async function resolveBody(definition: TemplateDefinition, options: SourceOptions): Promise<string> {
  switch (definition.source) {
    case 'INLINE':
      return definition.body;
    case 'FILE':
      return readFileSource(definition, options);
    case 'URL':
      return fetchUrlSource(definition, options);
    default:
      throw new TemplateError('SOURCE_REFUSED', `${describeTemplate(definition)}: unknown source ${String(definition.source)}`);
  }
}

/** The definition with its body read from its source, ready for renderTemplate. */
export async function withResolvedBody(definition: TemplateDefinition, options: SourceOptions): Promise<TemplateDefinition> {
  return definition.source === 'INLINE' ? definition : { ...definition, body: await resolveBody(definition, options) };
}

// ---- FILE ----

async function readFileSource(d: TemplateDefinition, options: SourceOptions): Promise<string> {
  const refuse = (why: string) => new TemplateError('SOURCE_REFUSED', `${describeTemplate(d)}: ${why}`);
  const ref = d.sourceRef;
  if (!ref || ref.includes('\0') || path.isAbsolute(ref)) throw refuse('a FILE source is a relative path inside the templates folder');
  const root = await realpath(options.templatesDir);
  // Checked twice: the path as written ("../../etc/passwd"), then where it really is, since a
  // symlink inside the folder may point anywhere.
  const candidate = path.resolve(root, ref);
  if (!isInside(root, candidate)) throw refuse(`${ref} leaves the templates folder`);
  let real: string;
  try {
    real = await realpath(candidate);
  } catch {
    throw new TemplateError('SOURCE_UNAVAILABLE', `${describeTemplate(d)}: ${ref} does not exist`);
  }
  if (!isInside(root, real)) throw refuse(`${ref} resolves outside the templates folder`);

  const file = await open(real, 'r');
  try {
    const stat = await file.stat();
    if (!stat.isFile()) throw refuse(`${ref} is not a file`);
    if (stat.size > options.maxBytes) throw refuse(`${ref} is ${stat.size} bytes, more than ${options.maxBytes}`);
    // Read at most maxBytes + 1 from the handle we checked, so a file that grows after stat is still capped.
    const buffer = Buffer.alloc(options.maxBytes + 1);
    const { bytesRead } = await file.read(buffer, 0, buffer.length, 0);
    if (bytesRead > options.maxBytes) throw refuse(`${ref} is more than ${options.maxBytes} bytes`);
    return decode(buffer.subarray(0, bytesRead), () => refuse(`${ref} is not UTF-8 text`));
  } finally {
    await file.close();
  }
}

function isInside(root: string, target: string): boolean {
  const relative = path.relative(root, target);
  return relative !== '' && relative !== '..' && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative);
}

function decode(bytes: Uint8Array, refuse: () => Error): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw refuse();
  }
}

// ---- URL ----

interface CachedBody {
  body: string;
  etag: string | null;
  freshUntil: number;
}

/**
 * URL bodies by address, bounded (oldest out). `inFlight` makes concurrent renders of one
 * expired template wait for one fetch instead of each sending its own.
 */
export class UrlCache {
  readonly entries = new Map<string, CachedBody>();
  readonly inFlight = new Map<string, Promise<string>>();
  constructor(readonly maxEntries = 500) {}

  set(url: string, entry: CachedBody) {
    this.entries.delete(url);
    this.entries.set(url, entry);
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }
}

async function fetchUrlSource(d: TemplateDefinition, options: SourceOptions): Promise<string> {
  const url = d.sourceRef;
  if (!isHttpUrl(url)) throw new TemplateError('SOURCE_REFUSED', `${describeTemplate(d)}: a URL source is an http or https address`);
  const { cache } = options;
  const now = options.now ?? Date.now;
  const cached = cache.entries.get(url);
  if (cached && now() < cached.freshUntil) return cached.body;

  const pending = cache.inFlight.get(url);
  if (pending) return pending;
  const request = fetchOnce(d, url, cached, cache, options, now).finally(() => cache.inFlight.delete(url));
  cache.inFlight.set(url, request);
  return request;
}

async function fetchOnce(
  d: TemplateDefinition,
  url: string,
  cached: CachedBody | undefined,
  cache: UrlCache,
  options: SourceOptions,
  now: () => number,
): Promise<string> {
  const name = describeTemplate(d);
  const unavailable = (why: string) => new TemplateError('SOURCE_UNAVAILABLE', `${name}: ${url} ${why}`);
  const refuse = (why: string) => new TemplateError('SOURCE_REFUSED', `${name}: ${url} ${why}`);
  // One signal for headers and body: a server that sends headers then trickles the body is
  // held to the same deadline.
  const signal = AbortSignal.timeout(options.timeoutMs);
  const headers: Record<string, string> = { accept: 'text/plain, text/html;q=0.9, */*;q=0.1' };
  if (cached?.etag) headers['if-none-match'] = cached.etag;
  try {
    const response = await (options.fetch ?? fetch)(url, { headers, signal, redirect: 'follow' });
    if (response.status === 304 && cached) {
      await response.body?.cancel();
      cache.set(url, { ...cached, freshUntil: now() + options.cacheTtlMs });
      return cached.body;
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw unavailable(`answered ${response.status}`);
    }
    // fetch follows redirects only between http(s), but say so rather than rely on it.
    if (response.url && !isHttpUrl(response.url)) throw refuse('redirected away from http(s)');
    const declared = Number(response.headers.get('content-length'));
    if (declared > options.maxBytes) {
      await response.body?.cancel();
      throw refuse(`declares ${declared} bytes, more than ${options.maxBytes}`);
    }
    const bytes = await readCapped(response, options.maxBytes, () => refuse(`sent more than ${options.maxBytes} bytes`));
    const body = decode(bytes, () => refuse('is not UTF-8 text'));
    cache.set(url, { body, etag: response.headers.get('etag'), freshUntil: now() + options.cacheTtlMs });
    return body;
  } catch (error) {
    if (error instanceof TemplateError) throw error;
    if (signal.aborted) throw unavailable(`did not answer within ${options.timeoutMs} ms`);
    throw unavailable(`could not be fetched (${(error as Error).message})`);
  }
}

/** Reads the body, stopping (and cancelling the download) as soon as it passes the cap. */
async function readCapped(response: Response, maxBytes: number, tooLarge: () => Error): Promise<Uint8Array> {
  if (!response.body) return new Uint8Array();
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}
