import { fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gunzip as gunzipCallback } from 'node:zlib';
import { sendError } from '../../platform/http/graphql-http.js';
import type { Handler } from '../../platform/http/server.js';
import type { Logger } from '../../platform/log.js';
import type { BundledFile, ExplorerBundle } from './bundle.js';
import { CONTENT_SECURITY_POLICY, pageHtml, wantsExplorerPage } from './page.js';
import { BUNDLED_NAME, readPrebuilt } from './prebuilt.js';

const gunzip = promisify(gunzipCallback);

/** Where the page's files are served; the page (at /graphql) names them relative to itself. */
export const EXPLORER_PATH = '/explorer/';
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BUNDLER = fileURLToPath(new URL('./bundle-process.ts', import.meta.url));
const BUNDLE_TIMEOUT_MS = 120_000;
/** After a failed bundle, requests are answered 503 this long before bundling is tried again. */
const RETRY_AFTER_MS = 30_000;
const IMMUTABLE = 'public, max-age=31536000, immutable';

export interface Explorer {
  /** The GraphiQL page, for a browser opening /graphql (see withExplorerPage). */
  page: Handler;
  /** The page's script, stylesheet, chunks and workers: content-hashed, cached for a year. */
  assets: Record<string, Handler>;
}

interface Served {
  page: { html: Buffer; etag: string };
  files: Map<string, BundledFile>;
}

/**
 * Bundling GraphiQL takes a couple of seconds, and esbuild's process grows to 400-450 MB doing
 * it (monaco alone is 3 MB minified) and keeps that memory until stopped, while the gateway's
 * pod has 512 Mi. So nothing is bundled until someone opens the explorer, and then in a child
 * process that ends when done, its esbuild under a soft heap limit (GOMEMLIMIT: a peak of about
 * 300 MB, for half a second more): the gateway keeps only the gzipped files, 2.1 MB. Where the
 * explorer was bundled ahead of time (the Docker image: ./prebuilt.ts), this never runs.
 */
export function bundleInChildProcess(): Promise<ExplorerBundle> {
  return new Promise((resolve, reject) => {
    const child = fork(BUNDLER, [], {
      cwd: ROOT,
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, GOMEMLIMIT: '256MiB' },
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    // A bundle in progress does not hold a stopping gateway open.
    child.unref();
    child.channel?.unref();
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4_000)));
    let bundle: ExplorerBundle | undefined;
    child.once('message', (message) => (bundle = message as ExplorerBundle));
    const timer = setTimeout(() => child.kill('SIGKILL'), BUNDLE_TIMEOUT_MS).unref();
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (bundle) resolve(bundle);
      else reject(new Error(`the explorer's bundler ended (${signal ?? `exit code ${code}`}) without a bundle: ${stderr.trim()}`));
    });
  });
}

/**
 * The schema explorer: GraphiQL 5 from the installed packages (no CDN), read from `assetsDir`
 * when it was bundled ahead of time there (`npm run explorer:build`; relative to the repo's
 * root), else bundled on first use; kept in memory either way, from the first time it is opened.
 * `bundle` is for tests.
 */
export function explorerRoutes(options: { logger: Logger; assetsDir?: string; bundle?: () => Promise<ExplorerBundle> }): Explorer {
  const logger = options.logger.child({ component: 'explorer' });
  const bundle = options.bundle ?? bundleInChildProcess;
  const assetsDir = options.assetsDir === undefined ? undefined : resolve(ROOT, options.assetsDir);
  let served: Promise<Served> | undefined;
  let failedAt = 0;

  const prebuilt = async (): Promise<Pick<ExplorerBundle, 'files' | 'page'> | undefined> => {
    if (assetsDir === undefined) return undefined;
    const started = performance.now();
    try {
      const result = await readPrebuilt(assetsDir);
      if (!result) {
        logger.info({ assetsDir }, 'no prebuilt schema explorer (npm run explorer:build): bundling it');
        return undefined;
      }
      logger.info({ assetsDir, builtAt: result.builtAt, ms: Math.round(performance.now() - started), ...sizes(result.files) }, 'schema explorer read from its prebuilt files');
      return result;
    } catch (error) {
      // Served anyway, at the cost the prebuilt files were there to avoid: say so loudly.
      logger.error({ err: error, assetsDir }, 'the prebuilt schema explorer is unusable: bundling it instead');
      return undefined;
    }
  };

  const bundled = async (): Promise<ExplorerBundle> => {
    const started = performance.now();
    const result = await bundle();
    logger.info({ bundleMs: result.ms, totalMs: Math.round(performance.now() - started), ...sizes(result.files) }, 'schema explorer bundled');
    for (const warning of result.warnings) logger.warn({ warning }, 'schema explorer bundle warning');
    return result;
  };

  const ready = (): Promise<Served> => {
    if (served) return served;
    if (Date.now() - failedAt < RETRY_AFTER_MS) return Promise.reject(new Error('the explorer failed to bundle recently'));
    served = prebuilt().then(async (result) => {
      const { files, page } = result ?? (await bundled());
      const html = Buffer.from(pageHtml(page, EXPLORER_PATH.slice(1)));
      return { page: { html, etag: etagOf(html) }, files: new Map(files.map((file) => [file.name, file])) };
    });
    served.catch((error: unknown) => {
      logger.error({ err: error }, 'schema explorer failed to bundle');
      served = undefined;
      failedAt = Date.now();
    });
    return served;
  };

  const page: Handler = async (req, res) => {
    let current: Served;
    try {
      current = await ready();
    } catch {
      return unavailable(res);
    }
    const headers = {
      'content-type': 'text/html; charset=utf-8',
      'content-security-policy': CONTENT_SECURITY_POLICY,
      // The page names the current files; it is revalidated, they never are.
      'cache-control': 'no-cache',
      etag: current.page.etag,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
    };
    if (notModified(req, current.page.etag)) return void res.writeHead(304, headers).end();
    res.writeHead(200, { ...headers, 'content-length': current.page.html.byteLength }).end(current.page.html);
  };

  const asset: Handler = async (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendError(res, 405, 'METHOD_NOT_ALLOWED', 'Use GET', { allow: 'GET, HEAD' });
    const name = (req.url ?? '').split('?')[0]!.slice(EXPLORER_PATH.length);
    // Only a name esbuild could have given: anything else does not start a bundle.
    if (!BUNDLED_NAME.test(name)) return sendError(res, 404, 'NOT_FOUND', 'No such explorer file');
    let current: Served;
    try {
      // A file asked for before the page: a page cached by the browser, from before a restart.
      current = await ready();
    } catch {
      return unavailable(res);
    }
    const file = current.files.get(name);
    if (!file) return sendError(res, 404, 'NOT_FOUND', 'No such explorer file');
    const headers = { 'content-type': file.contentType, 'cache-control': IMMUTABLE, etag: file.etag, vary: 'Accept-Encoding', 'x-content-type-options': 'nosniff' };
    if (notModified(req, file.etag)) return void res.writeHead(304, headers).end();
    // Kept gzipped only; the rare client that takes no gzip gets it inflated on the fly.
    const gzipped = acceptsGzip(req.headers['accept-encoding']);
    const body = gzipped ? file.gzip : await gunzip(file.gzip);
    res.writeHead(200, { ...headers, ...(gzipped ? { 'content-encoding': 'gzip' } : {}), 'content-length': body.byteLength });
    res.end(req.method === 'HEAD' ? undefined : body);
  };

  return { page, assets: { [EXPLORER_PATH]: asset } };
}

/**
 * The GraphQL endpoint, and the explorer's page for a browser opening it (a GET preferring HTML
 * with no `query`). GET answers vary with Accept from then on, which caches must know.
 */
export function withExplorerPage(page: Handler, graphql: Handler): Handler {
  return (req, res) => {
    if (req.method !== 'GET') return graphql(req, res);
    res.appendHeader('vary', 'Accept');
    return wantsExplorerPage(req) ? page(req, res) : graphql(req, res);
  };
}

function unavailable(res: ServerResponse): void {
  const body = 'The schema explorer is unavailable; try again shortly.\n';
  res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': String(RETRY_AFTER_MS / 1000), 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function sizes(files: BundledFile[]): { files: number; bytes: number; gzipBytes: number } {
  return { files: files.length, bytes: files.reduce((sum, f) => sum + f.bytes, 0), gzipBytes: files.reduce((sum, f) => sum + f.gzip.byteLength, 0) };
}

function etagOf(contents: Uint8Array): string {
  return `"${createHash('sha256').update(contents).digest('base64url').slice(0, 22)}"`;
}

function notModified(req: IncomingMessage, etag: string): boolean {
  const given = req.headers['if-none-match'];
  return given !== undefined && given.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag);
}

function acceptsGzip(acceptEncoding: string | undefined): boolean {
  return (acceptEncoding ?? '').split(',').some((part) => {
    const [coding, ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    const q = params.find((p) => p.startsWith('q='));
    return (coding === 'gzip' || coding === '*') && (!q || Number(q.slice(2)) > 0);
  });
}
