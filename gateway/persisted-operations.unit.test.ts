import type { IncomingMessage } from 'node:http';
import { ApolloServer, HeaderMap } from '@apollo/server';
import { parse, print } from 'graphql';
import { describe, expect, it } from 'vitest';
import { HttpRefusal } from '../platform/http/graphql-http.js';
import {
  BoundedApqCache,
  isIntrospectionOnly,
  operationId,
  parseManifest,
  PersistedOperations,
  type PersistedQueryManifest,
  type PersistedSettings,
} from './persisted-operations.js';

const typeDefs = `
  type Query { story(id: ID!): Story, stories: [Story!]! }
  type Story { id: ID!, title: String! }
  type Mutation { archiveStory(id: ID!): Story }
`;
// Bodies as the generator writes them: printed by graphql's `print`.
const STORY = print(parse('query Story($id: ID!) { story(id: $id) { ...StoryFields } } fragment StoryFields on Story { id title }'));
const ARCHIVE = print(parse('mutation ArchiveStory($id: ID!) { archiveStory(id: $id) { id } }'));
const manifest: PersistedQueryManifest = {
  format: 'apollo-persisted-query-manifest',
  version: 1,
  operations: [
    { id: operationId(ARCHIVE), name: 'ArchiveStory', type: 'mutation', body: ARCHIVE },
    { id: operationId(STORY), name: 'Story', type: 'query', body: STORY },
  ],
};
const STORY_ID = operationId(STORY);
const UNKNOWN_ID = operationId('{ stories { id } }');

const allow = new PersistedOperations(manifest, { mode: 'allow', introspection: true });
const only = new PersistedOperations(manifest, { mode: 'only', introspection: true });
const onlyNoIntrospection = new PersistedOperations(manifest, { mode: 'only', introspection: false });

const post = (persisted: PersistedOperations, body: unknown) => persisted.resolveHttp('POST', body, '').body;
const get = (persisted: PersistedOperations, params: Record<string, string>) =>
  Object.fromEntries(new URLSearchParams(persisted.resolveHttp('GET', undefined, `?${new URLSearchParams(params)}`).search));
const apq = (sha256Hash: string) => ({ persistedQuery: { version: 1, sha256Hash } });

function refusal(run: () => unknown): HttpRefusal {
  try {
    run();
  } catch (error) {
    if (error instanceof HttpRefusal) return error;
    throw error;
  }
  throw new Error('expected an HttpRefusal');
}

describe('parseManifest', () => {
  it('reads a manifest whose ids are the sha256 of their bodies', () => {
    expect(parseManifest(JSON.stringify(manifest)).operations.map((o) => o.name)).toEqual(['ArchiveStory', 'Story']);
  });

  it('refuses an id that is not the hash of its body, naming the operation', () => {
    const forged = { ...manifest, operations: [{ ...manifest.operations[1]!, body: `${STORY} ` }] };
    expect(() => parseManifest(JSON.stringify(forged), 'x.json')).toThrow('x.json: the id of Story is not the sha256 of its body');
  });

  it('refuses another format', () => {
    expect(() => parseManifest(JSON.stringify({ ...manifest, format: 'relay' }))).toThrow(/not an apollo-persisted-query-manifest/);
    expect(() => parseManifest('{')).toThrow(/not JSON/);
  });
});

describe.each([
  ['allow', allow],
  ['only', only],
] as const)('%s mode: an id from the manifest', (_mode, persisted) => {
  it('as extensions.persistedQuery becomes its document, the extension dropped and the others kept', () => {
    const body = { operationName: 'Story', variables: { id: 's1' }, extensions: { ...apq(STORY_ID), tracing: true } };
    expect(post(persisted, body)).toEqual({ operationName: 'Story', variables: { id: 's1' }, query: STORY, extensions: { tracing: true } });
    expect(post(persisted, { extensions: apq(STORY_ID) })).toEqual({ query: STORY });
  });

  it.each([`sha256:${STORY_ID}`, STORY_ID, `sha256:${STORY_ID.toUpperCase()}`])('as documentId %s becomes its document', (documentId) => {
    expect(post(persisted, { documentId, variables: { id: 's1' } })).toEqual({ query: STORY, variables: { id: 's1' } });
  });

  it('with its own document too is served (the id checked against it)', () => {
    expect(post(persisted, { query: STORY, extensions: apq(STORY_ID) })).toMatchObject({ query: STORY });
  });

  it('over GET becomes the document in the search parameters', () => {
    expect(get(persisted, { extensions: JSON.stringify(apq(STORY_ID)), variables: '{"id":"s1"}', operationName: 'Story' })).toEqual({
      query: STORY,
      variables: '{"id":"s1"}',
      operationName: 'Story',
    });
    expect(get(persisted, { documentId: `sha256:${STORY_ID}`, extensions: '{"tracing":true}' })).toEqual({ query: STORY, extensions: '{"tracing":true}' });
  });

  it('in a batch is resolved item by item', () => {
    expect(post(persisted, [{ documentId: STORY_ID }, { extensions: apq(operationId(ARCHIVE)) }])).toEqual([{ query: STORY }, { query: ARCHIVE }]);
  });

  it('refuses an id that is not the hash of the document sent with it', () => {
    const error = refusal(() => post(persisted, { query: ARCHIVE, extensions: apq(STORY_ID) }));
    expect([error.status, error.code]).toEqual([400, 'PERSISTED_QUERY_HASH_MISMATCH']);
    expect(refusal(() => post(persisted, { query: ARCHIVE, documentId: `sha256:${STORY_ID}` })).code).toBe('PERSISTED_QUERY_HASH_MISMATCH');
  });

  it.each([
    ['a documentId that is no sha256', { documentId: 'md5:abc' }, 'documentId must be'],
    ['a documentId that is not a string', { documentId: 42 }, 'documentId must be'],
    ['two ids that differ', { documentId: STORY_ID, extensions: apq(operationId(ARCHIVE)) }, 'name different operations'],
    ['another APQ version', { extensions: { persistedQuery: { version: 2, sha256Hash: STORY_ID } } }, 'Unsupported persisted query version'],
    ['a hash that is not a string', { extensions: { persistedQuery: { version: 1, sha256Hash: 1 } } }, 'must be a string'],
  ])('refuses %s', (_case, body, message) => {
    const error = refusal(() => post(persisted, body));
    expect([error.status, error.code]).toEqual([400, 'BAD_REQUEST']);
    expect(error.message).toContain(message);
  });

  it('refuses documentId given twice over GET', () => {
    expect(refusal(() => persisted.resolveHttp('GET', undefined, `?documentId=${STORY_ID}&documentId=${STORY_ID}`)).code).toBe('BAD_REQUEST');
  });
});

describe('allow mode: the rest goes on to Apollo', () => {
  it('passes a document, and a body with no query, as they are', () => {
    const body = { query: '{ stories { id } }', variables: {} };
    expect(post(allow, body)).toBe(body);
    expect(post(allow, { variables: {} })).toEqual({ variables: {} });
    expect(allow.resolveHttp('GET', undefined, '?query=%7B+stories+%7B+id+%7D+%7D').search).toBe('?query=%7B+stories+%7B+id+%7D+%7D');
  });

  it('passes an unknown APQ hash to Apollo, with or without its document (lookup or registration)', () => {
    const lookup = { extensions: apq(UNKNOWN_ID) };
    expect(post(allow, lookup)).toBe(lookup);
    const registration = { query: '{ stories { id } }', extensions: apq(UNKNOWN_ID) };
    expect(post(allow, registration)).toBe(registration);
    const search = `?extensions=${encodeURIComponent(JSON.stringify(apq(UNKNOWN_ID)))}`;
    expect(allow.resolveHttp('GET', undefined, search).search).toBe(search);
  });

  it('asks Apollo for an unknown documentId as an APQ hash', () => {
    expect(post(allow, { documentId: `sha256:${UNKNOWN_ID}`, extensions: { tracing: true } })).toEqual({ extensions: { tracing: true, ...apq(UNKNOWN_ID) } });
    expect(get(allow, { documentId: UNKNOWN_ID })).toEqual({ extensions: JSON.stringify(apq(UNKNOWN_ID)) });
    // An empty query with it would be an APQ registration of "" to Apollo.
    expect(post(allow, { query: '', documentId: UNKNOWN_ID })).toEqual({ extensions: apq(UNKNOWN_ID) });
    expect(get(allow, { query: '', documentId: UNKNOWN_ID })).toEqual({ extensions: JSON.stringify(apq(UNKNOWN_ID)) });
  });

  it('leaves what Apollo refuses itself (not an object, invalid JSON) to Apollo', () => {
    expect(post(allow, 'query { stories { id } }')).toBe('query { stories { id } }');
    expect(post(allow, undefined)).toBeUndefined();
    expect(allow.resolveHttp('GET', undefined, '?extensions=%7B').search).toBe('?extensions=%7B');
  });
});

describe('only mode: nothing but the manifest runs', () => {
  it('refuses an unknown id with PERSISTED_QUERY_NOT_IN_LIST, uncacheable', () => {
    for (const body of [{ extensions: apq(UNKNOWN_ID) }, { documentId: `sha256:${UNKNOWN_ID}` }]) {
      const error = refusal(() => post(only, body));
      expect([error.status, error.code]).toEqual([404, 'PERSISTED_QUERY_NOT_IN_LIST']);
      expect(error.message).toBe(`Persisted query '${UNKNOWN_ID}' not found in the persisted query list`);
      expect(error.headers['cache-control']).toBe('private, no-cache, must-revalidate');
    }
    expect(refusal(() => get(only, { documentId: UNKNOWN_ID })).code).toBe('PERSISTED_QUERY_NOT_IN_LIST');
  });

  it('refuses an unlisted document, and an APQ registration of one, with QUERY_NOT_IN_SAFELIST', () => {
    for (const body of [{ query: '{ stories { id } }' }, { query: '{ stories { id } }', extensions: apq(UNKNOWN_ID) }, { query: '{ stories {' }]) {
      const error = refusal(() => post(only, body));
      expect([error.status, error.code]).toEqual([403, 'QUERY_NOT_IN_SAFELIST']);
    }
    expect(refusal(() => get(only, { query: '{ stories { id } }' })).code).toBe('QUERY_NOT_IN_SAFELIST');
  });

  it('runs a listed document sent as it is', () => {
    const body = { query: STORY, variables: { id: 's1' } };
    expect(post(only, body)).toBe(body);
  });

  it('runs a listed document written otherwise as the manifest has it', () => {
    const reformatted = `# the web app's copy\n${STORY.replace(/\n\s*/g, ' ')}`;
    expect(operationId(reformatted)).not.toBe(STORY_ID);
    expect(post(only, { query: reformatted })).toEqual({ query: STORY });
  });

  it('leaves a body with no query to Apollo, which refuses it', () => {
    expect(post(only, { variables: {} })).toEqual({ variables: {} });
    expect(post(only, { query: 42 })).toEqual({ query: 42 });
  });

  it('refuses a document that is too long to be worth parsing', () => {
    const long = `{ ${Array.from({ length: 3000 }, (_, i) => `a${i}: __typename`).join(' ')} }`;
    expect(refusal(() => post(only, { query: long })).code).toBe('QUERY_NOT_IN_SAFELIST');
  });

  describe('introspection', () => {
    it.each([
      ['__schema', '{ __schema { queryType { name } } }'],
      ['__type', 'query Explorer { __type(name: "Story") { fields { name } } }'],
      ['__typename', '{ __typename }'],
      ['aliased', '{ schema: __schema { types { name } } kind: __typename }'],
      ['through a fragment', 'query { ...Meta } fragment Meta on Query { __schema { types { ...T } } } fragment T on __Type { name }'],
      ['through nested fragments', 'query { ...A } fragment A on Query { ...B } fragment B on Query { __typename }'],
      ['through an inline fragment', '{ ... on Query { __type(name: "Story") { name } } }'],
      ['in every operation', 'query A { __typename } query B { __schema { types { name } } }'],
    ])('runs an introspection-only document (%s) while PERSISTED_INTROSPECTION is true', (_case, query) => {
      expect(post(only, { query })).toEqual({ query });
      expect(refusal(() => post(onlyNoIntrospection, { query })).code).toBe('QUERY_NOT_IN_SAFELIST');
    });

    it.each([
      ['a field aliased as __schema', '{ __schema: stories { id } }'],
      ['a field beside __typename', '{ __typename stories { id } }'],
      ['a fragment with a field', 'query { ...F } fragment F on Query { __typename stories { id } }'],
      ['an inline fragment with a field', '{ __typename ... on Query { stories { id } } }'],
      ['one operation of two', 'query A { __typename } query B { stories { id } }'],
      ['an unknown fragment', 'query { ...Missing }'],
      ['cyclic fragments', 'query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }'],
    ])('refuses %s', (_case, query) => {
      expect(isIntrospectionOnly(parse(query))).toBe(false);
      expect(refusal(() => post(only, { query })).code).toBe('QUERY_NOT_IN_SAFELIST');
    });

    it('walks each fragment once, however often it is spread', () => {
      // 40 fragments each spreading the next twice: 2^40 walks without memoising.
      const fragments = Array.from({ length: 40 }, (_, i) => `fragment F${i} on Query { ${i === 39 ? '__typename' : `...F${i + 1} ...F${i + 1}`} }`);
      const started = Date.now();
      expect(isIntrospectionOnly(parse(`query { ...F0 } ${fragments.join(' ')}`))).toBe(true);
      expect(Date.now() - started).toBeLessThan(1000);
    });

    it('runs the id of an unlisted introspection document sent with it (no APQ to register it in)', () => {
      const query = '{ __typename }';
      expect(post(only, { query, extensions: apq(operationId(query)) })).toEqual({ query });
    });
  });
});

describe('admit (graphqlHandler hook)', () => {
  const request = (method: string, url: string) => ({ method, url }) as IncomingMessage;

  it('rewrites a GET by id to carry the document, as the handler reads the URL after the hook', () => {
    const req = request('GET', `/graphql?documentId=sha256:${STORY_ID}&variables=%7B%7D`);
    expect(only.admit(req, undefined)).toBeUndefined();
    const url = new URL(req.url!, 'http://localhost');
    expect(url.pathname).toBe('/graphql');
    expect(Object.fromEntries(url.searchParams)).toEqual({ query: STORY, variables: '{}' });
  });

  it('leaves a GET by document and its URL alone', () => {
    const req = request('GET', `/graphql?query=${encodeURIComponent(STORY)}`);
    only.admit(req, undefined);
    expect(req.url).toBe(`/graphql?query=${encodeURIComponent(STORY)}`);
  });

  it('returns the POST body to run', () => {
    expect(allow.admit(request('POST', '/graphql'), { documentId: STORY_ID })).toEqual({ query: STORY });
  });
});

describe('resolveSubscription (graphql-ws subscribe payloads)', () => {
  it('gives the document of a listed id, sent with query ""', () => {
    expect(only.resolveSubscription({ query: '', documentId: `sha256:${STORY_ID}` })).toEqual({ query: STORY });
    expect(allow.resolveSubscription({ query: '', extensions: apq(STORY_ID) })).toEqual({ query: STORY });
  });

  it('gives the document sent, where it may run', () => {
    expect(allow.resolveSubscription({ query: '{ stories { id } }' })).toEqual({ query: '{ stories { id } }' });
    expect(allow.resolveSubscription({ query: '{ stories { id } }', extensions: apq(operationId('{ stories { id } }')) })).toEqual({ query: '{ stories { id } }' });
    expect(only.resolveSubscription({ query: STORY })).toEqual({ query: STORY });
  });

  const codes = (result: ReturnType<PersistedOperations['resolveSubscription']>) => ('errors' in result ? result.errors.map((e) => e.extensions.code) : result);

  it('answers an unknown id with APQ PERSISTED_QUERY_NOT_FOUND in allow mode, so the client sends the document', () => {
    expect(codes(allow.resolveSubscription({ query: '', extensions: apq(UNKNOWN_ID) }))).toEqual(['PERSISTED_QUERY_NOT_FOUND']);
    expect(codes(allow.resolveSubscription({ query: '', documentId: UNKNOWN_ID }))).toEqual(['PERSISTED_QUERY_NOT_FOUND']);
  });

  it('refuses what only mode refuses over HTTP, with the same codes', () => {
    expect(codes(only.resolveSubscription({ query: '', documentId: UNKNOWN_ID }))).toEqual(['PERSISTED_QUERY_NOT_IN_LIST']);
    expect(codes(only.resolveSubscription({ query: '{ stories { id } }' }))).toEqual(['QUERY_NOT_IN_SAFELIST']);
    expect(codes(only.resolveSubscription({ query: ARCHIVE, documentId: STORY_ID }))).toEqual(['PERSISTED_QUERY_HASH_MISMATCH']);
    expect(codes(only.resolveSubscription({ query: '' }))).toEqual(['BAD_REQUEST']);
  });
});

describe('BoundedApqCache', () => {
  it('drops the least recently used entries beyond its size', async () => {
    // Each entry: 2 bytes a character, key and value 5 characters each = 20 bytes.
    const cache = new BoundedApqCache(60);
    await cache.set('key-a', 'val-a');
    await cache.set('key-b', 'val-b');
    await cache.set('key-c', 'val-c');
    expect(await cache.get('key-a')).toBe('val-a'); // now the most recent
    await cache.set('key-d', 'val-d');
    expect(await cache.get('key-b')).toBeUndefined();
    expect([await cache.get('key-a'), await cache.get('key-c'), await cache.get('key-d')]).toEqual(['val-a', 'val-c', 'val-d']);
    await cache.set('key-e', 'x'.repeat(100)); // larger than the whole cache: not kept, evicts nothing
    expect(await cache.get('key-e')).toBeUndefined();
    expect(await cache.get('key-a')).toBe('val-a');
  });

  it('forgets an entry at its ttl', async () => {
    let now = 1_000_000;
    const cache = new BoundedApqCache(1024, () => now);
    await cache.set('k', 'v', { ttl: 10 });
    await cache.set('forever', 'v');
    now += 9_999;
    expect(await cache.get('k')).toBe('v');
    now += 1;
    expect(await cache.get('k')).toBeUndefined();
    expect(await cache.get('forever')).toBe('v');
    expect(await cache.delete('forever')).toBe(true);
    expect(await cache.delete('forever')).toBe(false);
  });
});

describe('with Apollo Server', () => {
  const resolvers = { Query: { story: (_: unknown, { id }: { id: string }) => ({ id, title: `Story ${id}` }), stories: () => [] } };

  async function serve(settings: PersistedSettings) {
    const persisted = new PersistedOperations(manifest, settings);
    const apollo = new ApolloServer({ typeDefs, resolvers, ...persisted.apolloOptions() });
    await apollo.startInBackgroundHandlingStartupErrorsByLoggingAndFailingAllRequests();
    const send = async (method: 'GET' | 'POST', body: unknown, search = '') => {
      const admitted = persisted.resolveHttp(method, body, search);
      const response = await apollo.executeHTTPGraphQLRequest({
        httpGraphQLRequest: { method, headers: new HeaderMap([['content-type', 'application/json']]), search: admitted.search, body: admitted.body },
        context: async () => ({}),
      });
      if (response.body.kind !== 'complete') throw new Error('incremental response');
      return JSON.parse(response.body.string) as { data?: unknown; errors?: { extensions: { code: string } }[] };
    };
    return { apollo, send };
  }

  it('allow mode: a manifest id runs; an unknown hash is APQ-registered, then runs by hash', async () => {
    const { apollo, send } = await serve({ mode: 'allow', introspection: true });
    try {
      expect(await send('POST', { documentId: `sha256:${STORY_ID}`, variables: { id: '1' } })).toEqual({ data: { story: { id: '1', title: 'Story 1' } } });
      expect(await send('GET', undefined, `?${new URLSearchParams({ extensions: JSON.stringify(apq(STORY_ID)), variables: '{"id":"2"}' })}`)).toEqual({
        data: { story: { id: '2', title: 'Story 2' } },
      });
      const query = '{ stories { id } }';
      expect((await send('POST', { extensions: apq(operationId(query)) })).errors?.[0]?.extensions.code).toBe('PERSISTED_QUERY_NOT_FOUND');
      expect(await send('POST', { query, extensions: apq(operationId(query)) })).toEqual({ data: { stories: [] } });
      expect(await send('POST', { documentId: `sha256:${operationId(query)}` })).toEqual({ data: { stories: [] } });
    } finally {
      await apollo.stop();
    }
  });

  it('only mode: Apollo has APQ off, so the id the manifest resolved must be gone from the request', async () => {
    const { apollo, send } = await serve({ mode: 'only', introspection: true });
    try {
      expect(await send('POST', { extensions: apq(STORY_ID), variables: { id: '1' } })).toEqual({ data: { story: { id: '1', title: 'Story 1' } } });
      expect(await send('POST', { query: '{ __schema { queryType { name } } }' })).toEqual({ data: { __schema: { queryType: { name: 'Query' } } } });
      // What Apollo itself answers an id it is given with APQ off.
      const response = await apollo.executeHTTPGraphQLRequest({
        httpGraphQLRequest: { method: 'POST', headers: new HeaderMap([['content-type', 'application/json']]), search: '', body: { query: STORY, extensions: apq(STORY_ID) } },
        context: async () => ({}),
      });
      expect(response.body.kind === 'complete' && JSON.parse(response.body.string).errors[0].extensions.code).toBe('PERSISTED_QUERY_NOT_SUPPORTED');
    } finally {
      await apollo.stop();
    }
  });
});
