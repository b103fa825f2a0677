import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { BundledFile, ExplorerBundle } from './bundle.js';

/**
 * The explorer bundled ahead of time (`npm run explorer:build`, which the Docker image runs), so
 * that the gateway's pod never bundles: a folder of the gzipped files, `<name>.gz`, and
 * manifest.json naming them, the page's script, stylesheet and workers. The manifest is written
 * last, so a folder without one is an unfinished build. Types only from ./bundle.ts: the gateway
 * reads this folder without loading esbuild.
 */
export const MANIFEST = 'manifest.json';

/** A name esbuild can give (./bundle.ts: `[name]-[hash]`, `chunk-[hash]`, `<label>.worker-[hash]`). */
export const BUNDLED_NAME = /^[a-z]+(?:\.worker)?-[A-Z0-9]+\.(?:js|css)$/;

const fileName = z.string().regex(BUNDLED_NAME, 'not a name esbuild gives');
const manifestSchema = z.object({
  builtAt: z.string(),
  page: z.object({ script: fileName, style: fileName, workers: z.object({ editor: fileName, json: fileName, graphql: fileName }) }),
  files: z.array(z.object({ name: fileName, contentType: z.string().min(1), bytes: z.number().int().nonnegative(), etag: z.string().min(1) })).min(1),
});
type Manifest = z.infer<typeof manifestSchema>;

export interface Prebuilt extends Pick<ExplorerBundle, 'files' | 'page'> {
  builtAt: string;
}

/** Writes `bundle` into `dir`, then removes the files of an earlier build that it no longer names. */
export async function writePrebuilt(bundle: ExplorerBundle, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const manifest: Manifest = {
    builtAt: new Date().toISOString(),
    page: bundle.page,
    files: bundle.files.map(({ name, contentType, bytes, etag }) => ({ name, contentType, bytes, etag })),
  };
  await Promise.all(bundle.files.map((file) => writeFile(join(dir, `${file.name}.gz`), file.gzip)));
  // Renamed into place: a gateway starting meanwhile reads the old manifest or the new one, whole.
  await writeFile(join(dir, `${MANIFEST}.tmp`), `${JSON.stringify(manifest, null, 2)}\n`);
  await rename(join(dir, `${MANIFEST}.tmp`), join(dir, MANIFEST));
  // Only files this wrote are removed: `dir` is whatever the command line named.
  const kept = new Set(bundle.files.map((file) => `${file.name}.gz`));
  const stale = (await readdir(dir)).filter((entry) => entry.endsWith('.gz') && BUNDLED_NAME.test(entry.slice(0, -3)) && !kept.has(entry));
  await Promise.all(stale.map((entry) => rm(join(dir, entry))));
}

/**
 * The prebuilt explorer in `dir`, read whole into memory (2.1 MB); undefined when there is no
 * such folder. Throws, naming the problem, on a folder without a manifest, a manifest that does
 * not parse or names a file that is missing, and a file that is not the gzip of its size: each
 * would otherwise serve a page that loads nothing, or a truncated script cached for a year.
 */
export async function readPrebuilt(dir: string): Promise<Prebuilt | undefined> {
  const path = join(dir, MANIFEST);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (!isNotFound(error)) throw error;
    // No folder: nothing was prebuilt (development). A folder without a manifest: a build that stopped.
    const folder = await stat(dir).catch((e: unknown) => (isNotFound(e) ? undefined : Promise.reject(e)));
    if (!folder) return undefined;
    throw new Error(`${dir} has no ${MANIFEST}: an unfinished npm run explorer:build?`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new Error(`${path} is not JSON: ${(error as Error).message}`);
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) throw new Error(`${path} is not an explorer manifest: ${z.prettifyError(parsed.error)}`);
  const manifest = parsed.data;
  const names = new Set(manifest.files.map((file) => file.name));
  for (const needed of [manifest.page.script, manifest.page.style, ...Object.values(manifest.page.workers)]) {
    if (!names.has(needed)) throw new Error(`${path} names ${needed} for the page but not among its files`);
  }
  const files = await Promise.all(
    manifest.files.map(async (file): Promise<BundledFile> => {
      const gzip = await readFile(join(dir, `${file.name}.gz`));
      // A gzip member ends with the size of what it holds, modulo 2^32 (RFC 1952 §2.3.1, ISIZE).
      if (gzip.byteLength < 18 || gzip[0] !== 0x1f || gzip[1] !== 0x8b || gzip.readUInt32LE(gzip.byteLength - 4) !== file.bytes % 2 ** 32) {
        throw new Error(`${join(dir, `${file.name}.gz`)} is not the gzip of ${file.bytes} bytes`);
      }
      return { ...file, gzip };
    }),
  );
  return { files, page: manifest.page, builtAt: manifest.builtAt };
}

function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}
