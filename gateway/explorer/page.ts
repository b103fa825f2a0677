import type { IncomingMessage } from 'node:http';
import type { ExplorerBundle } from './bundle.js';

/**
 * The page's policy, the least GraphiQL 5 runs with: test/explorer.e2e.test.ts fails on any
 * violation in Chromium, as it did without each 'unsafe-inline' and data: below.
 * - scripts and workers from the gateway only: no inline script, no eval (monaco needs neither
 *   once its workers are files, not blobs);
 * - 'unsafe-inline' styles: monaco writes `<style>` elements and style attributes at run time,
 *   and takes no nonce;
 * - data: fonts: graphiql's stylesheet inlines Roboto, Fira Code and monaco's codicons;
 * - data: images: the page's empty favicon (else the browser asks for /favicon.ico) and
 *   graphiql's inlined icons; 'self' for its preview of images a response links to;
 * - connect-src 'self': HTTP and, in CSP Level 3, ws:/wss: to the same host and port.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "worker-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "font-src data:",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const escape = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * The HTML of the page, which loads the bundle's script and stylesheet from `assets` (relative to
 * the page's URL) and names the monaco workers for the script.
 */
export function pageHtml(page: ExplorerBundle['page'], assets: string): string {
  const workers = Object.fromEntries(Object.entries(page.workers).map(([label, name]) => [label, `${assets}${name}`]));
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Storyloom GraphQL explorer</title>
    <link rel="icon" href="data:,">
    <link rel="stylesheet" href="${escape(assets + page.style)}">
    <script type="module" src="${escape(assets + page.script)}"></script>
  </head>
  <body>
    <div id="graphiql" data-workers="${escape(JSON.stringify(workers))}">Loading the GraphQL explorer…</div>
  </body>
</html>
`;
}

/** `q` of each media range in an Accept header (`text/html;q=0.9` → ['text/html', 0.9]). */
function mediaRanges(accept: string): [string, number][] {
  return accept.split(',').flatMap((part) => {
    const [range, ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    if (!range) return [];
    const q = params.find((p) => p.startsWith('q='));
    const weight = q ? Number(q.slice(2)) : 1;
    return Number.isFinite(weight) ? [[range, weight] as [string, number]] : [];
  });
}

/** How much the Accept header wants `type`: its most specific range decides (RFC 9110 §12.5.1). */
function weightOf(ranges: [string, number][], type: string): number {
  const [major] = type.split('/');
  const match = ranges.find(([range]) => range === type) ?? ranges.find(([range]) => range === `${major}/*`) ?? ranges.find(([range]) => range === '*/*');
  return match?.[1] ?? 0;
}

/**
 * Whether an Accept header asks for HTML before a GraphQL response: a browser navigating
 * (`text/html,…,*\/*;q=0.8`) does, a GraphQL client or curl (`*\/*`) does not. HTML must be
 * named, and weigh more than JSON; a tie goes to GraphQL.
 */
export function prefersHtml(accept: string | undefined): boolean {
  if (!accept) return false;
  const ranges = mediaRanges(accept);
  const html = ranges.find(([range]) => range === 'text/html')?.[1] ?? 0;
  const json = Math.max(weightOf(ranges, 'application/json'), weightOf(ranges, 'application/graphql-response+json'));
  return html > 0 && html > json;
}

/** A browser opening the endpoint: a GET that prefers HTML and carries no operation. */
export function wantsExplorerPage(req: IncomingMessage): boolean {
  if (req.method !== 'GET') return false;
  const search = new URL(req.url ?? '/', 'http://localhost').searchParams;
  // A persisted operation fetched by GET names itself by id, not by `query`.
  return !['query', 'documentId', 'extensions'].some((name) => search.has(name)) && prefersHtml(req.headers.accept);
}
