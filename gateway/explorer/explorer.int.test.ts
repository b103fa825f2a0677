import type { Server } from 'node:http';
import { gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { closeServer, createHttpServer, listen, type Handler } from '../../platform/http/server.js';
import { createLogger } from '../../platform/log.js';
import type { ExplorerBundle } from './bundle.js';
import { explorerRoutes, withExplorerPage } from './explorer.js';
import { CONTENT_SECURITY_POLICY } from './page.js';

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
afterEach(async () => {
  if (server) await closeServer(server);
  server = undefined;
});

async function serve(bundle: () => Promise<ExplorerBundle>): Promise<string> {
  const explorer = explorerRoutes({ logger, bundle });
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
