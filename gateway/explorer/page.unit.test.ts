import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { pageHtml, prefersHtml, wantsExplorerPage } from './page.js';

describe('prefersHtml', () => {
  it('is true for browsers navigating', () => {
    // Chromium, Firefox, Safari.
    expect(prefersHtml('text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7')).toBe(true);
    expect(prefersHtml('text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8')).toBe(true);
    expect(prefersHtml('text/html, application/json;q=0.5')).toBe(true);
  });

  it('is false for GraphQL clients, curl, fetch and ties', () => {
    for (const accept of [
      undefined,
      '',
      '*/*',
      'application/json',
      'application/graphql-response+json, application/json;q=0.9',
      'text/*',
      'text/html;q=0',
      'text/html, application/json',
      'application/json, text/html;q=0.9',
      'text/html;q=0.5, */*',
    ]) {
      expect(prefersHtml(accept), String(accept)).toBe(false);
    }
  });
});

describe('wantsExplorerPage', () => {
  const request = (method: string, url: string, accept?: string) => ({ method, url, headers: { accept } }) as unknown as IncomingMessage;
  const BROWSER = 'text/html,*/*;q=0.8';

  it('is a browser GET without an operation', () => {
    expect(wantsExplorerPage(request('GET', '/graphql', BROWSER))).toBe(true);
    expect(wantsExplorerPage(request('GET', '/graphql?variables=%7B%7D', BROWSER))).toBe(true);
  });

  it('is not a GET with a query or a persisted operation\'s id, another method, or a GraphQL client', () => {
    expect(wantsExplorerPage(request('GET', '/graphql?query=%7B__typename%7D', BROWSER))).toBe(false);
    expect(wantsExplorerPage(request('GET', '/graphql?documentId=sha256%3Aab12', BROWSER))).toBe(false);
    expect(wantsExplorerPage(request('GET', '/graphql?extensions=%7B%7D', BROWSER))).toBe(false);
    expect(wantsExplorerPage(request('POST', '/graphql', BROWSER))).toBe(false);
    expect(wantsExplorerPage(request('HEAD', '/graphql', BROWSER))).toBe(false);
    expect(wantsExplorerPage(request('GET', '/graphql', 'application/json'))).toBe(false);
  });
});

describe('pageHtml', () => {
  it('loads the bundle relative to the page and names the workers for its script', () => {
    const html = pageHtml({ script: 'app-A1.js', style: 'app-B2.css', workers: { editor: 'editor.worker-C3.js', json: 'json.worker-D4.js', graphql: 'graphql.worker-E5.js' } }, 'explorer/');
    expect(html).toContain('<script type="module" src="explorer/app-A1.js"></script>');
    expect(html).toContain('<link rel="stylesheet" href="explorer/app-B2.css">');
    const workers = /data-workers="([^"]*)"/.exec(html)![1]!.replaceAll('&#34;', '"');
    expect(JSON.parse(workers)).toEqual({ editor: 'explorer/editor.worker-C3.js', json: 'explorer/json.worker-D4.js', graphql: 'explorer/graphql.worker-E5.js' });
    // No inline script: the page's CSP allows none.
    expect(html.match(/<script/g)).toHaveLength(1);
  });
});
