import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serverAudits, type AuditResult } from 'graphql-http';
import { registerMember } from './support/people.js';
import { startTestStack, type TestStack } from './support/stack.js';

/**
 * The gateway as a GraphQL-over-HTTP server (graphql-http's audits, the spec's test suite), and
 * how HTTP caches may keep its answers: public data over an anonymous GET, nothing else.
 */
let stack: TestStack;
const APP_ORIGIN = 'https://app.storyloom.example';

beforeAll(async () => {
  // Named origins, so CORS sets a Vary of its own (Origin) for the GETs to add to.
  stack = await startTestStack({ env: { CORS_ORIGINS: APP_ORIGIN } });
});
afterAll(async () => {
  await stack?.close();
});

/**
 * The audits the gateway fails, each for a choice of Apollo Server's that we keep: the same six
 * as in graphql-http's report for Apollo Server (implementations/apollo-server: 54 of 60 pass;
 * B7N8, a 400 for unparsable JSON, came later and passes). An id leaving or joining this list
 * is a change to look at.
 */
const EXPECTED_FAILURES: Record<string, string> = {
  // csrfPrevention refuses (400) a GET that sends no header forcing a CORS preflight
  // (apollo-require-preflight, x-apollo-operation-name, a non-simple content-type); the
  // audits' GETs send none. A client using GET must; with one, these pass (below).
  '5A70': 'MAY accept application/x-www-form-urlencoded formatted GET requests',
  D6D5: 'MAY allow URL-encoded JSON string {variables} parameter in GETs when accepting application/graphql-response+json',
  '6A70': 'MAY allow URL-encoded JSON string {variables} parameter in GETs when accepting application/json',
  // Apollo Server answers a request error (parse, validation, variable coercion) with 400
  // whatever the Accept; the spec's 200 for application/json is a SHOULD kept for legacy
  // clients, and ours (and identity-errors.e2e) rely on the 400.
  '572B': 'SHOULD use 200 status code on document parsing failure when accepting application/json',
  FDE2: 'SHOULD use 200 status code on document validation failure when accepting application/json',
  '7B9B': 'SHOULD use a status code of 200 on variable coercion failure when accepting application/json',
};

async function audit(fetchFn: typeof fetch = fetch): Promise<AuditResult[]> {
  const results: AuditResult[] = [];
  // One at a time: a failure then reads in order, and the stack is not the thing measured.
  for (const { fn } of serverAudits({ url: stack.app.gatewayUrl, fetchFn })) results.push(await fn());
  return results;
}

const failuresOf = (results: AuditResult[]) =>
  Object.fromEntries(results.filter((result) => result.status !== 'ok').map((result) => [result.id, result.name]));

describe('GraphQL over HTTP: graphql-http server audits', () => {
  it('passes 55 of the 61 audits; the six others fail for Apollo Server choices we keep', async () => {
    const results = await audit();
    const passed = results.filter((result) => result.status === 'ok').length;
    expect(failuresOf(results)).toEqual(EXPECTED_FAILURES);
    expect([passed, results.length]).toEqual([55, 61]);
    expect(passed).toBeGreaterThanOrEqual(54);
  });

  it('passes the GET audits too when the client sends a CSRF-prevention header', async () => {
    const preflighted: typeof fetch = (input, init = {}) => {
      if ((init.method ?? 'GET') !== 'GET') return fetch(input, init);
      return fetch(input, { ...init, headers: { ...(init.headers as Record<string, string>), 'apollo-require-preflight': 'true' } });
    };
    const failures = failuresOf(await audit(preflighted));
    expect(Object.keys(failures).sort()).toEqual(['572B', '7B9B', 'FDE2']);
  });

  it('refuses a body in a charset other than UTF-8 (415) instead of misreading it', async () => {
    const res = await fetch(stack.app.gatewayUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json; charset=iso-8859-1' },
      body: JSON.stringify({ query: '{ __typename }' }),
    });
    expect([res.status, res.headers.get('cache-control'), ((await res.json()) as any).errors[0].extensions.code]).toEqual([415, 'no-store', 'UNSUPPORTED_MEDIA_TYPE']);
    const utf8 = await fetch(stack.app.gatewayUrl, {
      method: 'POST',
      headers: { 'content-type': 'Application/JSON; Charset="UTF-8"' },
      body: JSON.stringify({ query: '{ __typename }' }),
    });
    expect(await utf8.json()).toEqual({ data: { __typename: 'Query' } });
  });
});

describe('HTTP caching: public data over GET', () => {
  let author: { id: string; token: string };
  let published: string;
  let draft: string;

  const CREATE = 'mutation($input: CreateStoryInput!) { createStory(input: $input) { story { id } userErrors { code } } }';
  const PUBLISH = 'mutation($id: ID!) { publishStory(id: $id) { story { status } userErrors { code } } }';
  const FEED = '{ publishedStories(first: 5) { totalCount pageInfo { hasNextPage } edges { cursor node { id title publishedAt author { displayName } } } } }';
  const STORY = 'query($id: ID!) { story(id: $id) { id title status customization { tone } author { displayName } } }';

  /** A GET as a client sends it: with the header csrfPrevention asks for. */
  function get(query: string, options: { variables?: Record<string, unknown>; token?: string; headers?: Record<string, string> } = {}) {
    const url = new URL(stack.app.gatewayUrl);
    url.searchParams.set('query', query);
    if (options.variables) url.searchParams.set('variables', JSON.stringify(options.variables));
    return fetch(url, {
      headers: { 'apollo-require-preflight': 'true', ...(options.token ? { authorization: `Bearer ${options.token}` } : {}), ...options.headers },
    });
  }

  /** The status, Cache-Control and errors' codes of an answer. */
  async function caching(res: Response) {
    const body = (await res.json()) as { errors?: { extensions?: { code?: string } }[] };
    return { status: res.status, cacheControl: res.headers.get('cache-control'), errors: body.errors?.map((e) => e.extensions?.code) };
  }

  beforeAll(async () => {
    author = await registerMember(stack, 'cache-author');
    const create = async (title: string) => {
      const res = await stack.gql(CREATE, { input: { title, content: 'Once upon a time, a lighthouse keeper met a ferryman.' } }, { token: author.token });
      expect(res.data.createStory.userErrors).toEqual([]);
      return res.data.createStory.story.id as string;
    };
    published = await create('A public tale');
    draft = await create('A private draft');
    const publish = await stack.gql(PUBLISH, { id: published }, { token: author.token });
    expect(publish.data.publishStory).toEqual({ story: { status: 'PUBLISHED' }, userErrors: [] });
  });

  it('answers the plan catalogue anonymously as public for 60 s, varying on Accept and Authorization', async () => {
    const res = await get('{ plans { tier name priceCents } }');
    expect(await caching(res)).toEqual({ status: 200, cacheControl: 'max-age=60, public', errors: undefined });
    expect(res.headers.get('vary')).toBe('Origin, Accept, Authorization');
  });

  it('answers the feed and a published story anonymously as public for 30 s (authors for 60, the least wins)', async () => {
    expect(await caching(await get(FEED))).toEqual({ status: 200, cacheControl: 'max-age=30, public', errors: undefined });
    const res = await get(STORY, { variables: { id: published } });
    expect(res.headers.get('cache-control')).toBe('max-age=30, public');
    expect(((await res.json()) as any).data.story).toMatchObject({ id: published, status: 'PUBLISHED', author: { displayName: 'cache-author' } });
  });

  it('never lets a cache keep an answer to a request with credentials', async () => {
    expect(await caching(await get('{ plans { tier } }', { token: author.token }))).toEqual({ status: 200, cacheControl: 'no-store', errors: undefined });
    expect(await caching(await get(STORY, { variables: { id: published }, token: author.token }))).toEqual({ status: 200, cacheControl: 'no-store', errors: undefined });
    // The author's own draft, and a token that is not valid (the request still runs, anonymously).
    expect(await caching(await get(STORY, { variables: { id: draft }, token: author.token }))).toEqual({ status: 200, cacheControl: 'no-store', errors: undefined });
    expect((await caching(await get('{ plans { tier } }', { token: 'not-a-token' }))).cacheControl).toBe('no-store');
  });

  it('keeps an answer with anything personal, or anything unmarked, out of shared caches', async () => {
    // me is never cached; anonymously it is also an error.
    expect((await caching(await get('{ plans { tier } me { id } }'))).cacheControl).toBe('no-store');
    // A personal field (null for anyone but the user) makes the whole answer private.
    expect(await caching(await get('{ publishedStories(first: 1) { edges { node { author { displayName email } } } } }'))).toEqual({
      status: 200,
      cacheControl: 'max-age=30, private',
      errors: undefined,
    });
    // Narrations come from a subgraph that marks nothing cacheable: the whole answer is not.
    expect(await caching(await get('query($id: ID!) { story(id: $id) { title narrations { id } } }', { variables: { id: published } }))).toEqual({
      status: 200,
      cacheControl: 'no-store',
      errors: undefined,
    });
    // Someone else's draft, anonymously: an error, never kept.
    const denied = await caching(await get(STORY, { variables: { id: draft } }));
    expect(denied.cacheControl).toBe('no-store');
    expect(denied.errors?.length).toBeGreaterThan(0);
  });

  it('answers a POST as no-store, public data included', async () => {
    const res = await stack.gql('{ plans { tier } }');
    expect([res.status, res.headers.get('cache-control')]).toEqual([200, 'no-store']);
  });

  it('refuses a mutation over GET (405) and answers none as cacheable', async () => {
    const res = await get('mutation { logOut(refreshToken: "x") { ok } }');
    expect([res.status, res.headers.get('allow')]).toEqual([405, 'POST']);
    expect(res.headers.get('cache-control')).not.toMatch(/public|max-age=[1-9]/);
    const posted = await stack.gql('mutation { logOut(refreshToken: "x") { ok } }');
    expect([posted.data, posted.headers.get('cache-control')]).toEqual([{ logOut: { ok: true } }, 'no-store']);
  });

  it('adds Accept and Authorization to the Vary that CORS set', async () => {
    const res = await get('{ plans { tier } }', { headers: { origin: APP_ORIGIN } });
    expect([res.headers.get('access-control-allow-origin'), res.headers.get('cache-control')]).toEqual([APP_ORIGIN, 'max-age=60, public']);
    expect(res.headers.get('vary')).toBe('Origin, Accept, Authorization');
  });
});
