import { createHash } from 'node:crypto';
import { basename, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build, type BuildOptions, type Message, type Plugin } from 'esbuild';

/** Where package imports resolve from: the project's root, whose node_modules hold graphiql. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ENTRY = fileURLToPath(new URL('./browser/app.ts', import.meta.url));
// Monaco's workers, by the label monaco asks for (browser/app.ts maps labels to these).
const WORKERS = {
  editor: 'monaco-editor/esm/vs/editor/editor.worker.js',
  json: 'monaco-editor/esm/vs/language/json/json.worker.js',
  graphql: 'monaco-graphql/esm/graphql.worker.js',
} as const;
export type WorkerLabel = keyof typeof WORKERS;

/** One file the explorer serves: gzipped (what browsers take), with its content type and ETag. */
export interface BundledFile {
  /** Its name under the explorer's path, content-hashed (`app-5XK2N7QH.js`). */
  name: string;
  contentType: string;
  gzip: Uint8Array;
  bytes: number;
  etag: string;
}

export interface ExplorerBundle {
  files: BundledFile[];
  /** What the page loads: its module script and stylesheet, and the workers' files by label. */
  page: { script: string; style: string; workers: Record<WorkerLabel, string> };
  warnings: string[];
  /** How long esbuild took. */
  ms: number;
}

/**
 * graphiql/style.css already holds monaco's CSS (its codicon font inlined). Monaco's modules
 * import the same CSS file by file; bundled, it would ship twice, the second copy in the
 * stylesheet of a lazily loaded chunk, which nothing loads. Those imports become empty.
 */
const monacoCssFromStyleSheet: Plugin = {
  name: 'monaco-css-from-graphiql-style',
  setup(build) {
    build.onLoad({ filter: /[\\/]node_modules[\\/]monaco-editor[\\/].*\.css$/ }, () => ({ contents: '', loader: 'css' }));
  },
};

const COMMON = {
  absWorkingDir: ROOT,
  bundle: true,
  minify: true,
  write: false as const,
  // Output paths only name the files (nothing is written).
  outdir: `${ROOT}explorer`,
  entryNames: '[name]-[hash]',
  chunkNames: 'chunk-[hash]',
  target: 'es2022',
  define: { 'process.env.NODE_ENV': '"production"' },
  logLevel: 'silent',
} satisfies BuildOptions;

/**
 * Bundles GraphiQL (the page's module script, split so that prettier and the like load only
 * when used, and one stylesheet) and monaco's three workers (classic scripts of their own):
 * 28 files, 6.7 MiB (2.1 MiB gzipped), in 1.5-2.5 s on an idle machine, with esbuild's process
 * at 300-450 MB meanwhile. So ./explorer.ts runs this in a child process, once, when the
 * explorer is first opened.
 */
export async function bundleExplorer(): Promise<ExplorerBundle> {
  const started = performance.now();
  // One after the other: the peak memory of esbuild's process is lower than with both at once.
  const app = await build({ ...COMMON, entryPoints: { app: ENTRY }, format: 'esm', splitting: true, metafile: true, plugins: [monacoCssFromStyleSheet] });
  const workers = await build({ ...COMMON, entryPoints: Object.fromEntries(Object.entries(WORKERS).map(([label, path]) => [`${label}.worker`, path])), format: 'iife' });
  const bundledMs = Math.round(performance.now() - started);

  const warnings = [...app.warnings, ...workers.warnings].map(describe);
  const [script, entry] = Object.entries(app.metafile.outputs).find(([, output]) => output.entryPoint && resolve(ROOT, output.entryPoint) === ENTRY) ?? [];
  if (!script || !entry?.cssBundle) throw new Error('esbuild produced no script or no stylesheet for the explorer');
  const style = entry.cssBundle;
  for (const [path, output] of Object.entries(app.metafile.outputs)) {
    if (path.endsWith('.css') && path !== style && output.bytes > 0) warnings.push(`${basename(path)}: CSS of a lazily loaded chunk, which the page does not load`);
  }
  const workerFiles = Object.fromEntries(
    Object.keys(WORKERS).map((label) => {
      const file = workers.outputFiles.find((f) => basename(f.path).startsWith(`${label}.worker-`));
      if (!file) throw new Error(`esbuild produced no ${label} worker`);
      return [label, basename(file.path)];
    }),
  ) as Record<WorkerLabel, string>;

  const files = [...app.outputFiles, ...workers.outputFiles].map((file): BundledFile => ({
    name: basename(file.path),
    contentType: contentTypeOf(file.path),
    gzip: gzipSync(file.contents, { level: 9 }),
    bytes: file.contents.byteLength,
    etag: `"${createHash('sha256').update(file.contents).digest('base64url').slice(0, 22)}"`,
  }));
  return { files, page: { script: basename(script), style: basename(style), workers: workerFiles }, warnings, ms: bundledMs };
}

function contentTypeOf(path: string): string {
  if (path.endsWith('.js')) return 'text/javascript; charset=utf-8';
  if (path.endsWith('.css')) return 'text/css; charset=utf-8';
  return 'application/octet-stream';
}

function describe(message: Message): string {
  return message.location ? `${message.location.file}:${message.location.line}: ${message.text}` : message.text;
}
