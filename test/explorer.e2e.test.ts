import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTENT_SECURITY_POLICY } from '../gateway/explorer/page.js';
import { clientOperation } from './support/clients.js';
import { registerMember } from './support/people.js';
import { startTestStack, type TestStack } from './support/stack.js';

/**
 * The schema explorer (GraphiQL at GET /graphql) in a real headless Chromium, against the whole
 * stack: the page and everything it loads come from the gateway, introspection fills the docs,
 * queries run, the header editor's token reaches HTTP and graphql-ws alike.
 */
const SCREENSHOT = fileURLToPath(new URL('../artifacts/explorer.png', import.meta.url));
const BROWSER_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8';

let stack: TestStack;
let userDataDir: string;
let context: BrowserContext;
let page: Page;
/** Every request the page made (HTTP and WebSocket), and what went wrong in it. */
const requests: string[] = [];
const sockets: { url: string; sent: string[]; received: string[] }[] = [];
const problems: string[] = [];

beforeAll(async () => {
  stack = await startTestStack();
  userDataDir = mkdtempSync(join(tmpdir(), 'explorer-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1400, height: 900 },
  });
  context.on('request', (request) => requests.push(request.url()));
  // Violations of the page's CSP surface as console errors (an init script is not subject to it).
  await context.addInitScript({
    content: `document.addEventListener('securitypolicyviolation', (e) => console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));`,
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('websocket', (socket) => {
    const record = { url: socket.url(), sent: [] as string[], received: [] as string[] };
    sockets.push(record);
    socket.on('framesent', (frame) => record.sent.push(String(frame.payload)));
    socket.on('framereceived', (frame) => record.received.push(String(frame.payload)));
  });
});

afterAll(async () => {
  await context?.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  await stack?.close();
});

/** What an editor shows, its whitespace collapsed (monaco wraps lines, and renders no-break spaces). */
const textOf = async (selector: string) => (await page.locator(selector).innerText()).replace(/[\s\u00a0]+/g, ' ');
const QUERY_EDITOR = '.graphiql-query-editor .graphiql-editor';
/** The variables or the headers editor, whichever tab is open. */
const TOOL_EDITOR = 'section.graphiql-editor-tool .graphiql-editor:not(.hidden)';
const RESULT = '.result-window';

/** Replaces an editor's text, as a paste would. */
async function fill(selector: string, text: string): Promise<void> {
  // At the start of the first line: monaco's lines are wider than the editor, and a click in
  // their middle would scroll it sideways, out of sight of the new text.
  await page.locator(`${selector} .view-lines`).click({ position: { x: 2, y: 2 } });
  await page.keyboard.press('ControlOrMeta+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(text);
  await expect.poll(() => textOf(selector)).toContain(text.split('\n')[0]);
}

/**
 * Runs an operation. A named one only once GraphiQL has taken in its name (its tab shows it): it
 * reads the operation's name and type 100 ms after an edit, and a subscription run sooner would
 * go over HTTP as the previous operation's type.
 */
async function run(query: string, name?: string): Promise<void> {
  await fill(QUERY_EDITOR, query);
  if (name) await expect.poll(() => page.locator('.graphiql-tab-active').innerText()).toBe(name);
  await page.locator('.graphiql-execute-button').click();
}

describe('the schema explorer in Chromium', () => {
  it('loads from the gateway alone, under its CSP, with the header editor open', async () => {
    const response = await page.goto(stack.app.gatewayUrl);
    expect(response?.status()).toBe(200);
    expect(response?.headers()['content-security-policy']).toBe(CONTENT_SECURITY_POLICY);
    await page.locator(`${QUERY_EDITOR} .monaco-editor`).waitFor({ timeout: 30_000 });
    await page.locator(`${TOOL_EDITOR} .monaco-editor`).waitFor();
    // The default operation (a public query) is in the editor.
    expect(await textOf(QUERY_EDITOR)).toContain('plans');
  });

  it('fills the documentation from introspection', async () => {
    await page.getByRole('button', { name: 'Show Documentation Explorer' }).click();
    const docs = page.locator('.graphiql-doc-explorer');
    await docs.getByRole('link', { name: 'Query' }).click();
    await expect.poll(() => docs.innerText(), { timeout: 10_000 }).toContain('publishedStories');
    expect(await docs.innerText()).toContain('plans');
  });

  it('runs a query typed into the editor and shows its result', async () => {
    const plans = (await stack.gql('{ plans { name } }')).data.plans as { name: string }[];
    expect(plans.length).toBeGreaterThan(0);
    await run('{ plans { name } }');
    await expect.poll(() => textOf(RESULT), { timeout: 10_000 }).toContain(`"name": "${plans[0]!.name}"`);
    mkdirSync(join(SCREENSHOT, '..'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT });
  });

  it('sends the header editor’s bearer token, which the gateway honours, over HTTP and graphql-ws', async () => {
    const member = await registerMember(stack, 'Explorer');
    await run('{ me { id displayName } }');
    await expect.poll(() => textOf(RESULT), { timeout: 10_000 }).toContain('UNAUTHENTICATED');

    await fill(TOOL_EDITOR, `{"Authorization": "Bearer ${member.token}"}`);
    await run('{ me { id displayName } }');
    await expect.poll(() => textOf(RESULT), { timeout: 10_000 }).toContain(`"id": "${member.id}"`);

    // A subscription runs over graphql-ws with the same header as connectionParams.
    const story = (await stack.gql(clientOperation('CreateStory'), { input: { title: 'Lighthouse', content: 'Mira kept the lighthouse.' } }, { token: member.token })).data.createStory.story;
    const narrated = await stack.gql(clientOperation('NarrateStory'), { input: { storyId: story.id, voice: 'STOCK', stockVoice: 'alloy' } }, { token: member.token });
    const job = narrated.data.narrateStory.job as { id: string };
    // The job's id as a variable: under vitest, an inline argument meets gateway/subscriptions.ts's
    // two graphql module instances (ESM and CommonJS; node alone loads one, as in production).
    await page.locator('button[data-name="variables"]').click();
    await fill(TOOL_EDITOR, JSON.stringify({ jobId: job.id }));
    await run('subscription Progress($jobId: ID!) { narrationJobUpdated(jobId: $jobId) { id status story { title } } }', 'Progress');
    await expect.poll(() => textOf(RESULT), { timeout: 20_000 }).toContain('"status": "COMPLETED"');
    expect(await textOf(RESULT)).toContain('"title": "Lighthouse"');

    const gateway = new URL(stack.app.gatewayUrl);
    expect(sockets.map((s) => s.url)).toEqual([`ws://${gateway.host}/graphql`]);
    const init = JSON.parse(sockets[0]!.sent[0]!) as { type: string; payload: Record<string, string> };
    expect(init).toEqual({ type: 'connection_init', payload: { authorization: `Bearer ${member.token}` } });
    expect(sockets[0]!.received.map((frame) => (JSON.parse(frame) as { type: string }).type)).toContain('connection_ack');
  });

  it('asked nothing of anyone but the gateway, and met no error nor CSP violation', () => {
    const origin = new URL(stack.app.gatewayUrl).origin;
    expect(requests.length).toBeGreaterThan(5);
    expect(requests.filter((url) => new URL(url).origin !== origin && !url.startsWith('data:'))).toEqual([]);
    expect(problems).toEqual([]);
  });
});

describe('/graphql for everyone else', () => {
  it('executes a GET with a query that asks for JSON, even from a browser', async () => {
    const url = `${stack.app.gatewayUrl}?query=${encodeURIComponent('{ __typename }')}`;
    for (const accept of ['application/json', 'application/graphql-response+json', BROWSER_ACCEPT]) {
      const res = await fetch(url, { headers: { accept, 'apollo-require-preflight': 'true' } });
      expect([res.status, res.headers.get('content-type'), await res.json()]).toEqual([200, expect.stringMatching(/json/), { data: { __typename: 'Query' } }]);
      expect(res.headers.get('vary')).toMatch(/accept/i);
    }
  });

  it('leaves a GET without HTML in its Accept, and every POST, to GraphQL', async () => {
    const get = await fetch(stack.app.gatewayUrl, { headers: { accept: '*/*', 'apollo-require-preflight': 'true' } });
    expect([get.status, get.headers.get('content-type')]).toEqual([400, expect.stringMatching(/json/)]);
    const post = await fetch(stack.app.gatewayUrl, {
      method: 'POST',
      headers: { accept: BROWSER_ACCEPT, 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ __typename }' }),
    });
    expect([post.status, await post.json()]).toEqual([200, { data: { __typename: 'Query' } }]);
  });

  it('serves the page’s files content-hashed, gzipped, cached for good, and revalidated by ETag', async () => {
    const html = await (await fetch(stack.app.gatewayUrl, { headers: { accept: BROWSER_ACCEPT } })).text();
    const script = /src="(explorer\/app-[A-Z0-9]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    const url = new URL(script!, stack.app.gatewayUrl);
    const res = await fetch(url, { headers: { 'accept-encoding': 'gzip' } });
    expect([res.status, res.headers.get('content-type'), res.headers.get('content-encoding'), res.headers.get('cache-control')]).toEqual([
      200,
      'text/javascript; charset=utf-8',
      'gzip',
      'public, max-age=31536000, immutable',
    ]);
    expect((await res.text()).length).toBeGreaterThan(100_000);
    const again = await fetch(url, { headers: { 'if-none-match': res.headers.get('etag')! } });
    expect(again.status).toBe(304);
    expect((await fetch(new URL('explorer/app-NOPE.js', stack.app.gatewayUrl))).status).toBe(404);
  });
});
