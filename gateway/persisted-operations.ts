/**
 * Persisted operations: the web and mobile apps' operations (../shared/clients), listed with
 * their sha256 in gateway/persisted-operations.json (`npm run persisted` writes it, CI checks
 * it), may be sent by id instead of by document.
 *
 * PERSISTED_OPERATIONS=allow (default): an id from the manifest becomes its document; any other
 *   id, and documents, go on to Apollo Server, whose APQ registers and serves them.
 * PERSISTED_OPERATIONS=only (the mobile apps' production setting): nothing but the manifest's
 *   operations runs, sent by id or as the very document; APQ registration is off. An
 *   introspection-only document still runs while PERSISTED_INTROSPECTION is true (the schema
 *   explorer).
 *
 * An id comes as `documentId` ("sha256:<hex>", the GraphQL-over-HTTP persisted documents
 * proposal; bare hex too) or as Apollo's `extensions.persistedQuery.sha256Hash`, in a POST body
 * or GET's search parameters; over graphql-ws, in the subscribe payload.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { dirname, join } from 'node:path';
import type { PersistedQueryOptions } from '@apollo/server';
import { GraphQLError, Kind, parse, print, type DocumentNode, type FragmentDefinitionNode, type SelectionSetNode } from 'graphql';
import { z } from 'zod';
import { HttpRefusal } from '../platform/http/graphql-http.js';
import { SCHEMA_DIR } from '../platform/paths.js';

export const MANIFEST_PATH = join(dirname(SCHEMA_DIR), 'gateway', 'persisted-operations.json');

export type PersistedMode = 'allow' | 'only';

export interface PersistedSettings {
  /** PERSISTED_OPERATIONS */
  mode: PersistedMode;
  /** PERSISTED_INTROSPECTION: in `only` mode, whether introspection-only documents still run. */
  introspection: boolean;
}

const manifestSchema = z.object({
  format: z.literal('apollo-persisted-query-manifest'),
  version: z.literal(1),
  operations: z.array(
    z.object({
      id: z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 in lowercase hex'),
      name: z.string().min(1),
      type: z.enum(['query', 'mutation', 'subscription']),
      body: z.string().min(1),
    }),
  ),
});

/** Apollo's persisted query manifest format, as the Router and Apollo's client tooling read it. */
export type PersistedQueryManifest = z.infer<typeof manifestSchema>;
export type ManifestOperation = PersistedQueryManifest['operations'][number];

/** An operation's id: the sha256 of its exact text, in hex (as APQ hashes it too). */
export const operationId = (body: string): string => createHash('sha256').update(body).digest('hex');

/** Reads a manifest, refusing one whose ids are not the hashes of their bodies. */
export function parseManifest(json: string, source = 'the manifest'): PersistedQueryManifest {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (error) {
    throw new Error(`${source} is not JSON: ${(error as Error).message}`);
  }
  const parsed = manifestSchema.safeParse(value);
  if (!parsed.success) {
    throw new Error(`${source} is not an apollo-persisted-query-manifest:\n${parsed.error.issues.map((i) => `  - ${i.path.join('.')}: ${i.message}`).join('\n')}`);
  }
  const seen = new Set<string>();
  for (const op of parsed.data.operations) {
    if (op.id !== operationId(op.body)) throw new Error(`${source}: the id of ${op.name} is not the sha256 of its body`);
    if (seen.has(op.id)) throw new Error(`${source}: ${op.name} is listed twice`);
    seen.add(op.id);
  }
  return parsed.data;
}

export const loadManifest = (path: string = MANIFEST_PATH): PersistedQueryManifest => parseManifest(readFileSync(path, 'utf8'), path);

/**
 * The refusals, with the codes and statuses Apollo Router answers them with
 * (apollo-router src/services/layers/persisted_queries/mod.rs), so clients react the same way.
 * NOT_IN_LIST is deliberately not APQ's PERSISTED_QUERY_NOT_FOUND: that one makes Apollo
 * Client's APQ link send the document next, which `only` refuses anyway. Not cacheable:
 * clients may be a release ahead of the gateway.
 */
export const PERSISTED_REFUSALS = {
  notInList: { status: 404, code: 'PERSISTED_QUERY_NOT_IN_LIST' },
  notInSafelist: { status: 403, code: 'QUERY_NOT_IN_SAFELIST' },
  hashMismatch: { status: 400, code: 'PERSISTED_QUERY_HASH_MISMATCH' },
  badRequest: { status: 400, code: 'BAD_REQUEST' },
} as const;
/** APQ's own code for an unknown hash: the client is to send the document with it (graphql-ws in `allow` mode). */
export const PERSISTED_QUERY_NOT_FOUND = 'PERSISTED_QUERY_NOT_FOUND';

const refuse = (kind: keyof typeof PERSISTED_REFUSALS, message: string) =>
  new HttpRefusal(PERSISTED_REFUSALS[kind].status, PERSISTED_REFUSALS[kind].code, message, { 'cache-control': 'private, no-cache, must-revalidate' });

/** The GraphQL parameters the rules look at, from a POST body, GET's search or a subscribe payload. */
interface Params {
  query?: unknown;
  documentId?: unknown;
  extensions?: unknown;
}

/** What becomes of one request's parameters. */
type Outcome =
  /** Passed on as sent. */
  | { kind: 'unchanged' }
  /** Runs `query`; documentId and extensions.persistedQuery are dropped (Apollo would re-hash, or, with APQ off, refuse them). */
  | { kind: 'document'; query: string }
  /** `allow` mode, an id not in the manifest sent as documentId: asked of Apollo's APQ as extensions.persistedQuery. */
  | { kind: 'apq'; sha256Hash: string };

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const DOCUMENT_ID = /^(?:sha256:)?([0-9a-fA-F]{64})$/;
const META_FIELDS = new Set(['__schema', '__type', '__typename']);
// A document not in the manifest is parsed in `only` mode (whitespace-insensitive match,
// introspection). Far above the explorer's introspection query (about 200 tokens) and any
// client operation, far below what would make parsing a cost.
const MAX_TOKENS = 5_000;

/**
 * True when every operation selects only __schema, __type and __typename at its root, through
 * aliases, inline fragments and fragment spreads alike (as the Router decides it).
 */
export function isIntrospectionOnly(document: DocumentNode): boolean {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
  // Memoised by fragment: a fragment spread twice in each of n nested fragments is not 2^n walks.
  // A fragment still being walked is a cycle: not introspection (validation refuses it anyway).
  const verdicts = new Map<string, boolean>();
  const onlyMeta = (set: SelectionSetNode): boolean =>
    set.selections.every((s) => {
      if (s.kind === Kind.FIELD) return META_FIELDS.has(s.name.value);
      if (s.kind === Kind.INLINE_FRAGMENT) return onlyMeta(s.selectionSet);
      const name = s.name.value;
      const fragment = fragments.get(name);
      if (!fragment) return false;
      if (!verdicts.has(name)) {
        verdicts.set(name, false);
        verdicts.set(name, onlyMeta(fragment.selectionSet));
      }
      return verdicts.get(name)!;
    });
  const operations = document.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION);
  return operations.length > 0 && operations.every((op) => onlyMeta(op.selectionSet));
}

export class PersistedOperations {
  private readonly bodies = new Map<string, string>();

  constructor(
    manifest: PersistedQueryManifest,
    readonly settings: PersistedSettings,
  ) {
    for (const op of manifest.operations) this.bodies.set(op.id, op.body);
  }

  static fromFile(settings: PersistedSettings, path: string = MANIFEST_PATH): PersistedOperations {
    return new PersistedOperations(loadManifest(path), settings);
  }

  get size(): number {
    return this.bodies.size;
  }

  /**
   * What ApolloServer is given: in `only` mode no APQ (a registration would be a way around the
   * list; ids are resolved here before Apollo sees them); in `allow` mode a cache of its own,
   * bounded, as anyone may register documents in it.
   */
  apolloOptions(cache: { maxBytes?: number; ttlSeconds?: number } = {}): { persistedQueries: PersistedQueryOptions | false } {
    if (this.settings.mode === 'only') return { persistedQueries: false };
    // An evicted or expired document costs an APQ client one round trip (it sends it again).
    return { persistedQueries: { cache: new BoundedApqCache(cache.maxBytes ?? 16 * 1024 * 1024), ttl: cache.ttlSeconds ?? 24 * 3600 } };
  }

  /**
   * The request Apollo is to see, given the parsed POST body (an array for a batch) or, for
   * GET, the URL's search: the same body and search when nothing changes. Throws an HttpRefusal.
   */
  resolveHttp(method: string, body: unknown, search: string): { body: unknown; search: string } {
    if (method === 'POST') {
      if (Array.isArray(body)) return { body: body.map((item) => (isRecord(item) ? this.rewriteBody(item) : item)), search };
      return { body: isRecord(body) ? this.rewriteBody(body) : body, search };
    }
    if (method === 'GET') return { body, search: this.rewriteSearch(search) };
    return { body, search };
  }

  /**
   * graphqlHandler's `admit` hook. GET's parameters are in the URL, which the handler reads
   * after this hook: a GET by id has its URL rewritten to carry the document.
   */
  readonly admit = (req: IncomingMessage, body: unknown): unknown => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const admitted = this.resolveHttp((req.method ?? 'GET').toUpperCase(), body, url.search);
    if (admitted.search !== url.search) req.url = url.pathname + admitted.search;
    return admitted.body;
  };

  /**
   * A graphql-ws subscribe payload's document, or the errors to answer it with. graphql-ws
   * requires `query` to be a string: a client sending an id sends `query: ""`. There is no APQ
   * cache here: in `allow` mode an unknown id is APQ's PERSISTED_QUERY_NOT_FOUND, so the client
   * sends the document.
   */
  readonly resolveSubscription = (payload: Params): { query: string } | { errors: GraphQLError[] } => {
    let outcome: Outcome;
    try {
      outcome = this.resolve(payload);
    } catch (error) {
      if (!(error instanceof HttpRefusal)) throw error;
      return { errors: [new GraphQLError(error.message, { extensions: { code: error.code } })] };
    }
    if (outcome.kind === 'document') return { query: outcome.query };
    if (outcome.kind === 'apq') {
      return { errors: [new GraphQLError('PersistedQueryNotFound', { extensions: { code: PERSISTED_QUERY_NOT_FOUND } })] };
    }
    if (typeof payload.query === 'string' && payload.query !== '') return { query: payload.query };
    const pq = isRecord(payload.extensions) ? payload.extensions.persistedQuery : undefined;
    if (isRecord(pq)) return { errors: [new GraphQLError('PersistedQueryNotFound', { extensions: { code: PERSISTED_QUERY_NOT_FOUND } })] };
    return { errors: [new GraphQLError('Send a query, a documentId or extensions.persistedQuery', { extensions: { code: 'BAD_REQUEST' } })] };
  };

  private rewriteBody(body: Record<string, unknown>): Record<string, unknown> {
    const outcome = this.resolve(body);
    if (outcome.kind === 'unchanged') return body;
    const { documentId: _, ...rest } = body;
    if (outcome.kind === 'apq') {
      // An empty query would be taken by Apollo for a registration of "" under that hash.
      if (rest.query === '') delete rest.query;
      return { ...rest, extensions: { ...(isRecord(body.extensions) ? body.extensions : {}), persistedQuery: { version: 1, sha256Hash: outcome.sha256Hash } } };
    }
    const result: Record<string, unknown> = { ...rest, query: outcome.query };
    if (isRecord(body.extensions)) {
      const { persistedQuery: __, ...extensions } = body.extensions;
      if (Object.keys(extensions).length) result.extensions = extensions;
      else delete result.extensions;
    }
    return result;
  }

  private rewriteSearch(search: string): string {
    const params = new URLSearchParams(search);
    // Apollo refuses a parameter given twice; documentId is this module's to refuse.
    if (params.getAll('documentId').length > 1) throw refuse('badRequest', "The 'documentId' search parameter may only be specified once.");
    const queries = params.getAll('query');
    const extensionValues = params.getAll('extensions');
    let extensions: unknown;
    try {
      extensions = extensionValues.length === 1 ? JSON.parse(extensionValues[0]!) : undefined;
    } catch {
      extensions = undefined; // Apollo answers invalid JSON itself
    }
    const outcome = this.resolve({ query: queries.length === 1 ? queries[0] : undefined, documentId: params.get('documentId') ?? undefined, extensions });
    if (outcome.kind === 'unchanged') return search;
    params.delete('documentId');
    if (outcome.kind === 'apq') {
      if (params.get('query') === '') params.delete('query');
      params.set('extensions', JSON.stringify({ ...(isRecord(extensions) ? extensions : {}), persistedQuery: { version: 1, sha256Hash: outcome.sha256Hash } }));
    } else {
      params.set('query', outcome.query);
      if (isRecord(extensions)) {
        const { persistedQuery: _, ...rest } = extensions;
        if (Object.keys(rest).length) params.set('extensions', JSON.stringify(rest));
        else params.delete('extensions');
      }
    }
    const rewritten = params.toString();
    return rewritten ? `?${rewritten}` : '';
  }

  /** The rules, on one request's parameters. */
  private resolve(params: Params): Outcome {
    const requested = this.requestedId(params);
    const query = typeof params.query === 'string' && params.query !== '' ? params.query : undefined;
    const only = this.settings.mode === 'only';
    if (requested) {
      const { id, via } = requested;
      if (query !== undefined) {
        // An id with its document: APQ's registration, or a client sending both.
        if (operationId(query) !== id) throw refuse('hashMismatch', 'The sha256 of the query is not the id sent with it');
        if (!only) return via === 'documentId' ? { kind: 'document', query } : { kind: 'unchanged' };
        if (this.bodies.has(id)) return { kind: 'document', query };
        return { kind: 'document', query: this.admitFreeform(query) };
      }
      const body = this.bodies.get(id);
      if (body !== undefined) return { kind: 'document', query: body };
      if (only) throw refuse('notInList', `Persisted query '${id}' not found in the persisted query list`);
      return via === 'documentId' ? { kind: 'apq', sha256Hash: id } : { kind: 'unchanged' };
    }
    if (!only || query === undefined || this.bodies.has(operationId(query))) return { kind: 'unchanged' };
    const admitted = this.admitFreeform(query);
    return admitted === query ? { kind: 'unchanged' } : { kind: 'document', query: admitted };
  }

  /**
   * `only` mode, a document whose hash is not listed: the manifest's own text when it is a
   * listed operation written otherwise (whitespace, comments), itself when introspection-only
   * and allowed; refused else.
   */
  private admitFreeform(query: string): string {
    let document: DocumentNode;
    try {
      document = parse(query, { noLocation: true, maxTokens: MAX_TOKENS });
    } catch {
      throw refuse('notInSafelist', 'The operation body was not found in the persisted query safelist');
    }
    const listed = this.bodies.get(operationId(print(document)));
    if (listed !== undefined) return listed;
    if (this.settings.introspection && isIntrospectionOnly(document)) return query;
    throw refuse('notInSafelist', 'The operation body was not found in the persisted query safelist');
  }

  /** The id a request names, by documentId or extensions.persistedQuery; refuses a malformed or contradictory one. */
  private requestedId(params: Params): { id: string; via: 'documentId' | 'extension' } | undefined {
    let fromDocumentId: string | undefined;
    if (params.documentId !== undefined && params.documentId !== null) {
      const match = typeof params.documentId === 'string' ? DOCUMENT_ID.exec(params.documentId) : null;
      if (!match) throw refuse('badRequest', 'documentId must be "sha256:" followed by 64 hexadecimal digits');
      fromDocumentId = match[1]!.toLowerCase();
    }
    let fromExtension: string | undefined;
    const pq = isRecord(params.extensions) ? params.extensions.persistedQuery : undefined;
    if (isRecord(pq)) {
      if (pq.version !== 1) throw refuse('badRequest', 'Unsupported persisted query version');
      if (typeof pq.sha256Hash !== 'string') throw refuse('badRequest', 'extensions.persistedQuery.sha256Hash must be a string');
      fromExtension = pq.sha256Hash;
    }
    if (fromDocumentId !== undefined && fromExtension !== undefined && fromDocumentId !== fromExtension) {
      throw refuse('badRequest', 'documentId and extensions.persistedQuery name different operations');
    }
    if (fromDocumentId !== undefined) return { id: fromDocumentId, via: 'documentId' };
    if (fromExtension !== undefined) return { id: fromExtension, via: 'extension' };
    return undefined;
  }
}

/**
 * Apollo's KeyValueCache for APQ, least recently used out first, holding at most `maxBytes`
 * (counted as UTF-16, as V8 holds the strings), each entry until its ttl.
 */
export class BoundedApqCache {
  private readonly entries = new Map<string, { value: string; bytes: number; expiresAt: number }>();
  private bytes = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly now: () => number = Date.now,
  ) {}

  async get(key: string): Promise<string | undefined> {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    if (entry.expiresAt <= this.now()) {
      this.bytes -= entry.bytes;
      return undefined;
    }
    this.entries.set(key, entry); // most recently used: last in the Map's order
    return entry.value;
  }

  async set(key: string, value: string, options?: { ttl?: number | null }): Promise<void> {
    await this.delete(key);
    const bytes = 2 * (key.length + value.length);
    if (bytes > this.maxBytes) return;
    const expiresAt = options?.ttl ? this.now() + options.ttl * 1000 : Infinity;
    this.entries.set(key, { value, bytes, expiresAt });
    this.bytes += bytes;
    for (const [oldest, entry] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(oldest);
      this.bytes -= entry.bytes;
    }
  }

  async delete(key: string): Promise<boolean> {
    const entry = this.entries.get(key);
    if (!entry) return false;
    this.entries.delete(key);
    this.bytes -= entry.bytes;
    return true;
  }
}
