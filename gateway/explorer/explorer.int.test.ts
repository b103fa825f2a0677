import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { closeServer, createHttpServer, listen, type Handler } from '../../platform/http/server.js';
import { createLogger, type Logger } from '../../platform/log.js';
import type { ExplorerBundle } from './bundle.js';
import { explorerRoutes, withExplorerPage } from './explorer.js';
import { CONTENT_SECURITY_POLICY } from './page.js';
import { MANIFEST, writePrebuilt } from './prebuilt.js';

/** The explorer's HTTP side over a real server, with a stand-in bundle (test/explorer.e2e.test.ts bundles for real). */
const logger = createLogger('silent');
const BROWSER = 'text/html,application/xhtml+xml,*/*;q=0.8';
const SCRIPT = 'console.log("explorer");'.repeat(100);

function fakeBundle(): ExplorerBundle {
  const file = (name: string, contentType: string, contents: string) => ({ name, contentType, gzip: gzipSync(contents), bytes: contents.length, etag: `"${name}"` });
  return {
    files: [file('app-AAAA.js', 'text/javascript; charset=utf-8', SCRIPT), file('app-BBBB.css', 'text/css; charset=utf-8', 'body{}'), file('editor.worker-CCCC.js', 'text/javascript; charset=utf-8', '1')],
    page: { script: 'app-AAAA.js', style: 'app-BBBB.css', workers: { editor: 'editor.worker-CCCC.js', json: 'editor.worker-CCCC.js', graphql: 'editor.worker-CCCC.js' } },
    warnings: [],
    ms: 1,
  };
}

let server: Server | undefined;
const dirs: string[] = [];
afterEach(async () => {
  if (server) await closeServer(server);
  server = undefined;
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function serve(bundle: () => Promise<ExplorerBundle>, options: { assetsDir?: string; logger?: Logger } = {}): Promise<string> {
  const explorer = explorerRoutes({ logger: options.logger ?? logger, bundle, ...(options.assetsDir ? { assetsDir: options.assetsDir } : {}) });
  const graphql: Handler = (req, res) => void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ method: req.method }));
  server = createHttpServer({ '/graphql': withExplorerPage(explorer.page, graphql), ...explorer.assets }, logger);
  return listen(server, 0, '127.0.0.1');
}

describe('the explorer over HTTP', () => {
  it('bundles once, when first opened, and serves the page with its CSP', async () => {
    let bundles = 0;
    const url = await serve(async () => {
      bundles++;
      return fakeBundle();
    });
    expect(bundles).toBe(0);
    const [first, second] = await Promise.all([fetch(`${url}/graphql`, { headers: { accept: BROWSER } }), fetch(`${url}/graphql`, { headers: { accept: BROWSER } })]);
    expect(bundles).toBe(1);
    expect([first.status, first.headers.get('content-type'), first.headers.get('content-security-policy'), first.headers.get('cache-control'), first.headers.get('vary')]).toEqual([
      200,
      'text/html; charset=utf-8',
      CONTENT_SECURITY_POLICY,
      'no-cache',
      'Accept',
    ]);
    const html = await first.text();
    expect(html).toContain('src="explorer/app-AAAA.js"');
    expect(await second.text()).toBe(html);
    const again = await fetch(`${url}/graphql`, { headers: { accept: BROWSER, 'if-none-match': first.headers.get('etag')! } });
    expect(again.status).toBe(304);
  });

  it('leaves everything but a browser’s GET without a query to GraphQL', async () => {
    const url = await serve(async () => fakeBundle());
    const answers = await Promise.all([
      fetch(`${url}/graphql?query=%7B__typename%7D`, { headers: { accept: BROWSER } }),
      fetch(`${url}/graphql`, { headers: { accept: 'application/json' } }),
      fetch(`${url}/graphql`, { method: 'POST', headers: { accept: BROWSER }, body: '{}' }),
    ]);
    expect(await Promise.all(answers.map((res) => res.json()))).toEqual([{ method: 'GET' }, { method: 'GET' }, { method: 'POST' }]);
    expect(answers.map((res) => res.headers.get('vary'))).toEqual(['Accept', 'Accept', null]);
  });

  it('serves the files gzipped, or inflated for a client that takes no gzip, cached for good', async () => {
    const url = await serve(async () => fakeBundle());
    const gzipped = await fetch(`${url}/explorer/app-AAAA.js`, { headers: { 'accept-encoding': 'gzip' } });
    expect([gzipped.status, gzipped.headers.get('content-encoding'), gzipped.headers.get('cache-control'), gzipped.headers.get('etag'), await gzipped.text()]).toEqual([
      200,
      'gzip',
      'public, max-age=31536000, immutable',
      '"app-AAAA.js"',
      SCRIPT,
    ]);
    const plain = await fetch(`${url}/explorer/app-AAAA.js`, { headers: { 'accept-encoding': 'identity' } });
    expect([plain.headers.get('content-encoding'), plain.headers.get('content-length'), await plain.text()]).toEqual([null, String(SCRIPT.length), SCRIPT]);
    expect((await fetch(`${url}/explorer/app-AAAA.js`, { headers: { 'if-none-match': '"app-AAAA.js"' } })).status).toBe(304);
    expect((await fetch(`${url}/explorer/app-ZZZZ.js`)).status).toBe(404);
    expect((await fetch(`${url}/explorer/app-AAAA.js`, { method: 'POST' })).status).toBe(405);
  });

  it('does not bundle for a file name esbuild would not give', async () => {
    let bundles = 0;
    const url = await serve(async () => {
      bundles++;
      return fakeBundle();
    });
    for (const name of ['wp-login.php', 'app.js', '.env', 'app-AAAA.js.map']) expect((await fetch(`${url}/explorer/${name}`)).status).toBe(404);
    expect(bundles).toBe(0);
  });

  it('answers 503 when bundling fails, and does not retry at once', async () => {
    let bundles = 0;
    const url = await serve(async () => {
      bundles++;
      throw new Error('esbuild is missing');
    });
    for (const path of ['/graphql', '/explorer/app-AAAA.js']) {
      const res = await fetch(`${url}${path}`, { headers: { accept: BROWSER } });
      expect([res.status, res.headers.get('retry-after')]).toEqual([503, '30']);
    }
    expect(bundles).toBe(1);
  });
});

describe('the explorer bundled ahead of time (npm run explorer:build)', () => {
  const PREBUILT_SCRIPT = 'console.log("prebuilt");'.repeat(100);
  /** The fake bundle with another script, so a page from the folder is told from a page bundled now. */
  function prebuiltBundle(): ExplorerBundle {
    const bundle = fakeBundle();
    const script = { name: 'app-PPPP.js', contentType: 'text/javascript; charset=utf-8', gzip: gzipSync(PREBUILT_SCRIPT), bytes: PREBUILT_SCRIPT.length, etag: '"app-PPPP.js"' };
    return { ...bundle, files: [script, ...bundle.files.slice(1)], page: { ...bundle.page, script: script.name } };
  }
  async function prebuiltDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'explorer-'));
    dirs.push(dir);
    await writePrebuilt(prebuiltBundle(), dir);
    return dir;
  }
  function capturedLogger() {
    const lines: { level: number; msg: string; err?: { message: string } }[] = [];
    return { lines, logger: pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) }) };
  }
  const counting = () => {
    const counter = { bundles: 0, bundle: async () => (counter.bundles++, fakeBundle()) };
    return counter;
  };

  it('serves the page and its files from the folder, read on first use and only then, and never bundles', async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'explorer-')), 'dist', 'explorer');
    dirs.push(dir);
    const counter = counting();
    const { logger, lines } = capturedLogger();
    const url = await serve(counter.bundle, { assetsDir: dir, logger });
    // Built after the gateway started: nothing was read at start.
    await writePrebuilt(prebuiltBundle(), dir);
    const page = await fetch(`${url}/graphql`, { headers: { accept: BROWSER } });
    expect([page.status, page.headers.get('content-security-policy')]).toEqual([200, CONTENT_SECURITY_POLICY]);
    expect(await page.text()).toContain('src="explorer/app-PPPP.js"');
    // In memory from then on.
    await rm(dir, { recursive: true });
    const script = await fetch(`${url}/explorer/app-PPPP.js`, { headers: { 'accept-encoding': 'gzip' } });
    expect([script.status, script.headers.get('content-encoding'), script.headers.get('etag'), await script.text()]).toEqual([200, 'gzip', '"app-PPPP.js"', PREBUILT_SCRIPT]);
    const plain = await fetch(`${url}/explorer/app-BBBB.css`, { headers: { 'accept-encoding': 'identity' } });
    expect([plain.headers.get('content-type'), await plain.text()]).toEqual(['text/css; charset=utf-8', 'body{}']);
    expect((await fetch(`${url}/explorer/app-AAAA.js`)).status).toBe(404);
    expect(counter.bundles).toBe(0);
    expect(lines.map((line) => line.msg)).toEqual(['schema explorer read from its prebuilt files']);
  });

  it('bundles, without an error, where nothing was prebuilt', async () => {
    const counter = counting();
    const { logger, lines } = capturedLogger();
    const url = await serve(counter.bundle, { assetsDir: join(tmpdir(), 'explorer-never-built'), logger });
    expect(await (await fetch(`${url}/graphql`, { headers: { accept: BROWSER } })).text()).toContain('src="explorer/app-AAAA.js"');
    expect(counter.bundles).toBe(1);
    expect(lines.filter((line) => line.level >= 40)).toEqual([]);
  });

  const breakages: Record<string, [(dir: string) => Promise<unknown>, RegExp]> = {
    'a manifest that does not parse': [(dir) => writeFile(join(dir, MANIFEST), '{"page":'), /manifest\.json is not JSON/],
    'a manifest naming a file that is missing': [(dir) => rm(join(dir, 'editor.worker-CCCC.js.gz')), /ENOENT.*editor\.worker-CCCC\.js\.gz/],
    'a manifest naming a page file it does not list': [
      async (dir) => {
        const manifest = JSON.parse(await readFile(join(dir, MANIFEST), 'utf8'));
        await writeFile(join(dir, MANIFEST), JSON.stringify({ ...manifest, files: manifest.files.filter((file: { name: string }) => file.name !== 'app-BBBB.css') }));
      },
      /names app-BBBB\.css for the page/,
    ],
    'a manifest naming a file outside the folder': [
      async (dir) => {
        const manifest = JSON.parse(await readFile(join(dir, MANIFEST), 'utf8'));
        await writeFile(join(dir, MANIFEST), JSON.stringify({ ...manifest, files: [...manifest.files, { ...manifest.files[0], name: '../../etc/passwd' }] }));
      },
      /not a name esbuild gives/,
    ],
    'a truncated file': [(dir) => truncate(join(dir, 'app-PPPP.js.gz'), 100), /app-PPPP\.js\.gz is not the gzip of 2400 bytes/],
    'a folder without a manifest (an unfinished build)': [(dir) => rm(join(dir, MANIFEST)), /has no manifest\.json/],
  };
  for (const [breakage, [breakIt, problem]] of Object.entries(breakages)) {
    it(`logs an error and bundles instead, given ${breakage}`, async () => {
      const dir = await prebuiltDir();
      await breakIt(dir);
      const counter = counting();
      const { logger, lines } = capturedLogger();
      const url = await serve(counter.bundle, { assetsDir: dir, logger });
      const page = await fetch(`${url}/graphql`, { headers: { accept: BROWSER } });
      expect([page.status, await page.text()]).toEqual([200, expect.stringContaining('src="explorer/app-AAAA.js"')]);
      expect(counter.bundles).toBe(1);
      const errors = lines.filter((line) => line.level >= 50);
      expect(errors.map((line) => line.msg)).toEqual(['the prebuilt schema explorer is unusable: bundling it instead']);
      expect(errors[0]!.err?.message).toMatch(problem);
    });
  }
});
