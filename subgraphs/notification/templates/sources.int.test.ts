import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { resolveBody, UrlCache, type SourceOptions } from './sources.js';
import { TemplateError, type TemplateDefinition } from './template.js';

/** A local http server whose routes count their hits and keep the request headers. */
let server: Server;
let origin: string;
const hits = new Map<string, IncomingMessage['headers'][]>();
const routes = new Map<string, (req: IncomingMessage, res: ServerResponse) => void>();

let clock = 0;
let options: SourceOptions;

const urlTemplate = (sourceRef: string): TemplateDefinition => ({
  key: 'story.published',
  channel: 'EMAIL',
  locale: 'en',
  version: 1,
  subject: 'Published',
  body: '',
  source: 'URL',
  sourceRef,
});
const resolve = (route: string) => resolveBody(urlTemplate(`${origin}${route}`), options);
const failure = (route: string) => resolve(route).then(() => null, (e: TemplateError) => ({ code: e.code, message: e.message }));
const hitCount = (route: string) => hits.get(route)?.length ?? 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    const route = req.url ?? '/';
    hits.set(route, [...(hits.get(route) ?? []), req.headers]);
    const handle = routes.get(route);
    if (handle) handle(req, res);
    else res.writeHead(404).end();
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((done) => server.close(done));
});

beforeEach(() => {
  hits.clear();
  routes.clear();
  clock = 1_000_000;
  // A fresh cache per test: the process-wide one would carry bodies from one test to the next.
  options = { templatesDir: '/nonexistent', cacheTtlMs: 60_000, maxBytes: 1_000, timeoutMs: 300, cache: new UrlCache(), now: () => clock };
});

describe('resolveBody: URL', () => {
  it('fetches once within the TTL, and again after it', async () => {
    let version = 1;
    routes.set('/plain', (_req, res) => res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(`Body v${version} {storyTitle} é`));

    expect(await resolve('/plain')).toBe('Body v1 {storyTitle} é');
    clock += 59_999;
    version = 2;
    expect(await resolve('/plain')).toBe('Body v1 {storyTitle} é');
    expect(hitCount('/plain')).toBe(1);

    clock += 1;
    expect(await resolve('/plain')).toBe('Body v2 {storyTitle} é');
    expect(hitCount('/plain')).toBe(2);
    // No ETag was given, so none is sent back.
    expect(hits.get('/plain')![1]!['if-none-match']).toBeUndefined();
  });

  it('revalidates with the ETag after the TTL, keeps the body on 304, and takes a new one when it changed', async () => {
    let etag = '"v1"';
    let body = 'Hello {name}';
    routes.set('/etag', (req, res) => {
      if (req.headers['if-none-match'] === etag) res.writeHead(304, { etag }).end();
      else res.writeHead(200, { etag }).end(body);
    });

    expect(await resolve('/etag')).toBe('Hello {name}');
    clock += 60_000;
    expect(await resolve('/etag')).toBe('Hello {name}');
    expect(hits.get('/etag')!.map((h) => h['if-none-match'])).toEqual([undefined, '"v1"']);

    // The 304 renewed the TTL: no request within it.
    clock += 30_000;
    expect(await resolve('/etag')).toBe('Hello {name}');
    expect(hitCount('/etag')).toBe(2);

    etag = '"v2"';
    body = 'Bonjour {name}';
    clock += 30_000;
    expect(await resolve('/etag')).toBe('Bonjour {name}');
    clock += 60_000;
    expect(await resolve('/etag')).toBe('Bonjour {name}');
    expect(hits.get('/etag')!.map((h) => h['if-none-match'])).toEqual([undefined, '"v1"', '"v1"', '"v2"']);
  });

  it('sends one request for renders that ask at the same time', async () => {
    routes.set('/slow', (_req, res) => setTimeout(() => res.writeHead(200).end('once'), 50));
    expect(await Promise.all([resolve('/slow'), resolve('/slow'), resolve('/slow')])).toEqual(['once', 'once', 'once']);
    expect(hitCount('/slow')).toBe(1);
  });

  it('refuses a body over the cap, whether declared by Content-Length or streamed without one', async () => {
    routes.set('/declared', (_req, res) => res.writeHead(200, { 'content-length': '5000' }).end('y'.repeat(5_000)));
    routes.set('/chunked', (_req, res) => {
      res.writeHead(200);
      // Chunks with no Content-Length: only counting while reading finds the size.
      for (let i = 0; i < 10; i++) res.write('z'.repeat(500));
      res.end();
    });
    routes.set('/exact', (_req, res) => res.writeHead(200).end('k'.repeat(1_000)));

    expect(await failure('/declared')).toMatchObject({ code: 'SOURCE_REFUSED', message: expect.stringContaining('declares 5000 bytes') });
    expect(await failure('/chunked')).toMatchObject({ code: 'SOURCE_REFUSED', message: expect.stringContaining('sent more than 1000 bytes') });
    expect(await resolve('/exact')).toHaveLength(1_000);
  });

  it('gives up after the timeout, waiting for headers or for a body that trickles', async () => {
    routes.set('/hang', () => {
      /* never answers */
    });
    routes.set('/trickle', (_req, res) => {
      res.writeHead(200);
      res.write('a');
      setTimeout(() => res.end('b'), 2_000);
    });
    const started = Date.now();
    expect(await failure('/hang')).toMatchObject({ code: 'SOURCE_UNAVAILABLE', message: expect.stringContaining('did not answer within 300 ms') });
    expect(await failure('/trickle')).toMatchObject({ code: 'SOURCE_UNAVAILABLE', message: expect.stringContaining('did not answer within 300 ms') });
    expect(Date.now() - started).toBeLessThan(1_500);
  });

  it('says an HTTP error is unavailable, and does not cache it', async () => {
    let status = 503;
    routes.set('/flaky', (_req, res) => res.writeHead(status).end(status === 200 ? 'back' : 'down'));
    expect(await failure('/flaky')).toMatchObject({ code: 'SOURCE_UNAVAILABLE', message: expect.stringContaining('answered 503') });
    status = 200;
    expect(await resolve('/flaky')).toBe('back');
    expect(await failure('/missing')).toMatchObject({ code: 'SOURCE_UNAVAILABLE', message: expect.stringContaining('answered 404') });
  });

  it('follows a redirect between http addresses', async () => {
    routes.set('/moved', (_req, res) => res.writeHead(301, { location: '/plain2' }).end());
    routes.set('/plain2', (_req, res) => res.writeHead(200).end('moved here'));
    expect(await resolve('/moved')).toBe('moved here');
  });

  it.each(['file:///etc/passwd', 'ftp://example.com/t.txt', 'data:text/plain,hello', 'javascript:alert(1)', 'not a url'])(
    'refuses %j, which is not http(s), without a request',
    async (sourceRef) => {
      let called = false;
      const fetch = (async () => {
        called = true;
        throw new Error('should not fetch');
      }) as typeof globalThis.fetch;
      const outcome = await resolveBody(urlTemplate(sourceRef), { ...options, fetch }).catch((e: TemplateError) => e.code);
      expect(outcome).toBe('SOURCE_REFUSED');
      expect(called).toBe(false);
    },
  );

  it('uses the fetch it is given', async () => {
    const seen: string[] = [];
    const fetch = (async (input: string | URL | Request) => {
      seen.push(String(input));
      return new Response('from the injected fetch', { status: 200, headers: { etag: '"x"' } });
    }) as typeof globalThis.fetch;
    expect(await resolveBody(urlTemplate('https://cdn.example.com/t.txt'), { ...options, fetch })).toBe('from the injected fetch');
    expect(seen).toEqual(['https://cdn.example.com/t.txt']);
  });
});
