import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import {
  GraphQLError,
  Kind,
  getOperationAST,
  OperationTypeNode,
  getNamedType,
  parse,
  parseType,
  print,
  validate,
  visit,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type VariableDefinitionNode,
} from 'graphql';
import { getArgumentValues, getVariableValues } from 'graphql/execution/values.js';
import { decodeJwt } from 'jose';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import type { Caller } from '../platform/internal-auth.js';
import { assertLiveSubject, type LiveBus } from '../platform/live/live.js';
import type { Logger } from '../platform/log.js';
import { LIVE_ALIAS, LiveHub, TERMINAL_ALIAS, type LiveFetch, type Subscriber } from './live-hub.js';
import { documentLimitErrors, parseWithinLimits, type OperationLimits } from './operation-limits.js';
import type { PersistedOperations } from './persisted-operations.js';

/**
 * What a Subscription field declares with `@live` in its subgraph's SDL (kept in the supergraph
 * by @composeDirective): the live subject it follows, with `{arg}` placeholders, the query field
 * that fetches its entity, with `$arg` variables, and the values of a field of that entity after
 * which nothing more will change.
 */
export interface LiveFieldSpec {
  subject: string;
  query: string;
  terminalField: string;
  terminalValues: string[];
}

/** The @live fields of the supergraph's Subscription type, by field name. */
export function liveFieldsOf(supergraphSdl: string): Map<string, LiveFieldSpec> {
  const fields = new Map<string, LiveFieldSpec>();
  const doc = parse(supergraphSdl);
  for (const definition of doc.definitions) {
    if ((definition.kind !== Kind.OBJECT_TYPE_DEFINITION && definition.kind !== Kind.OBJECT_TYPE_EXTENSION) || definition.name.value !== 'Subscription') continue;
    for (const field of definition.fields ?? []) {
      const live = field.directives?.find((d) => d.name.value === 'live');
      if (!live) continue;
      const arg = (name: string) => live.arguments?.find((a) => a.name.value === name)?.value;
      const text = (name: string, fallback?: string) => {
        const value = arg(name);
        if (value?.kind === Kind.STRING) return value.value;
        if (fallback !== undefined) return fallback;
        throw new Error(`@live on Subscription.${field.name.value} needs ${name}`);
      };
      const values = arg('terminalValues');
      fields.set(field.name.value, {
        subject: text('subject'),
        query: text('query'),
        terminalField: text('terminalField', 'status'),
        terminalValues: values?.kind === Kind.LIST ? values.values.flatMap((v) => (v.kind === Kind.STRING ? [v.value] : [])) : [],
      });
    }
  }
  return fields;
}

export interface SubscriptionServerOptions {
  http: Server;
  /** The API schema clients validate against (the supergraph without federation's internals). */
  schema: GraphQLSchema;
  liveFields: Map<string, LiveFieldSpec>;
  live: LiveBus;
  /** Runs a query through the gateway as `caller` (federated, with every authorization rule). */
  fetch: LiveFetch;
  authenticate(authorization: string | undefined): Promise<Caller>;
  maxPayloadBytes: number;
  limits: { perConnection: number; perUser: number };
  /** The same limits as operations over HTTP (depth, aliases, root fields, tokens, cost). */
  operationLimits: OperationLimits;
  /** Resolves a persisted operation's id, and in persisted-only mode refuses anything else. */
  persisted: PersistedOperations;
  /** The rate limits: spends a token of the caller's bucket; null if allowed, else why not. */
  charge(caller: Caller, req: IncomingMessage): Promise<{ message: string; retryAfterSeconds: number } | null>;
  logger: Logger;
}

interface ConnectionState {
  caller: Caller;
  /** When the access token the connection opened with expires (ms since epoch). */
  expiresAt: number;
  /** Ids of subscriptions still starting: a second Subscribe with one of them is refused. */
  starting: Set<string>;
  subscribers: Map<string, Subscriber>;
  /** Subscriptions counted against the limits: the running ones and those still starting. */
  reserved: number;
}

const refuse = (message: string, code: string) => [new GraphQLError(message, { extensions: { code } })];

/**
 * GraphQL subscriptions over graphql-ws (`graphql-transport-ws`) on the gateway's /graphql.
 * @apollo/gateway executes no subscriptions: for each live event the subscriber's selection
 * set runs as a federated query with the subscriber's identity, so fields of every subgraph
 * resolve and every authorization rule of queries holds (a subscriber who may not read the
 * entity is refused when subscribing).
 */
export function startSubscriptionServer(options: SubscriptionServerOptions) {
  const { logger, limits } = options;
  const hub = new LiveHub(options.live, options.fetch, logger);
  const connections = new WeakMap<object, ConnectionState>();
  const perUser = new Map<string, number>();
  const wss = new WebSocketServer({ server: options.http, path: '/graphql', maxPayload: options.maxPayloadBytes });

  // Reserved before a subscription starts (its first fetch takes a while), so a burst of
  // subscribes cannot all pass the limits before any of them is counted.
  const reserve = (state: ConnectionState) => {
    state.reserved++;
    perUser.set(state.caller.userId!, (perUser.get(state.caller.userId!) ?? 0) + 1);
  };
  const unreserve = (state: ConnectionState) => {
    state.reserved--;
    const userId = state.caller.userId!;
    const count = (perUser.get(userId) ?? 1) - 1;
    if (count > 0) perUser.set(userId, count);
    else perUser.delete(userId);
  };
  const release = (state: ConnectionState, id: string) => {
    const subscriber = state.subscribers.get(id);
    if (!subscriber) return;
    state.subscribers.delete(id);
    subscriber.close();
    unreserve(state);
  };

  const disposable = useServer(
    {
      schema: options.schema,
      onConnect: async (ctx) => {
        const authorization = ctx.connectionParams?.authorization;
        const caller = await options.authenticate(typeof authorization === 'string' ? authorization : undefined);
        // Subscriptions follow a user's own jobs: an anonymous connection has nothing to follow,
        // and neither has a guest session (userId null; its scope is a template, not jobs).
        if (!caller.userId) return false;
        const refusal = await options.charge(caller, ctx.extra.request);
        if (refusal) {
          // 4429 rather than graphql-ws's 4403 for `false`: the client may come back later.
          ctx.extra.socket.close(4429, 'Too many requests');
          return false;
        }
        const expiresAt = expiryOf(authorization as string);
        connections.set(ctx, { caller, expiresAt, starting: new Set(), subscribers: new Map(), reserved: 0 });
        // The identity the connection proved ends with its token: the socket closes then, and the
        // client reconnects with a fresh token.
        const timer = setTimeout(() => ctx.extra.socket.close(4403, 'Forbidden: the access token has expired'), Math.max(0, expiresAt - Date.now()));
        timer.unref();
        ctx.extra.socket.once('close', () => clearTimeout(timer));
        return true;
      },
      onSubscribe: async (ctx, id, payload) => {
        const state = connections.get(ctx)!;
        const refusal = await options.charge(state.caller, ctx.extra.request);
        if (refusal) return [new GraphQLError(refusal.message, { extensions: { code: 'RATE_LIMITED', retryAfterSeconds: refusal.retryAfterSeconds } })];
        const resolved = options.persisted.resolveSubscription(payload);
        if ('errors' in resolved) return resolved.errors;
        let document: DocumentNode;
        try {
          // Without locations: a subscription keeps its document for its lifetime, and the
          // locations were half of its memory (bench/subscriptions.ts).
          document = parseWithinLimits(resolved.query, options.operationLimits, { noLocation: true });
        } catch (error) {
          return [error as GraphQLError];
        }
        // Each update runs as a query with two aliases more (LIVE_ALIAS, TERMINAL_ALIAS), under
        // the same limits: they are kept free here, so what passes now passes at every update.
        const aliasesLeft = { ...options.operationLimits, maxAliases: Math.max(0, options.operationLimits.maxAliases - 2) };
        const limited = documentLimitErrors(options.schema, document, payload.variables ?? {}, aliasesLeft, payload.operationName ?? undefined);
        if (limited.length) return limited;
        const errors = validate(options.schema, document);
        if (errors.length) return errors;
        // The operation graphql-ws itself would run (it refuses an ambiguous document the same way).
        const operation = getOperationAST(document, payload.operationName);
        if (!operation || operation.operation !== OperationTypeNode.SUBSCRIPTION) {
          return refuse('Send one subscription (named by operationName if the document has several); queries and mutations go over HTTP', 'BAD_REQUEST');
        }
        if (Date.now() >= state.expiresAt) return refuse('The access token has expired', 'UNAUTHENTICATED');
        if (state.starting.has(id) || state.subscribers.has(id)) return refuse(`Subscription id ${id} is in use`, 'BAD_REQUEST');
        if (state.reserved >= limits.perConnection) return refuse(`At most ${limits.perConnection} subscriptions per connection`, 'TOO_MANY_SUBSCRIPTIONS');
        const userId = state.caller.userId!;
        if ((perUser.get(userId) ?? 0) >= limits.perUser) return refuse(`At most ${limits.perUser} subscriptions per user`, 'TOO_MANY_SUBSCRIPTIONS');
        // Validation guarantees one root field for a subscription; a fragment around it is not served.
        const field = operation.selectionSet.selections[0];
        if (field?.kind !== Kind.FIELD) return refuse('Select the subscription field directly, not through a fragment', 'BAD_REQUEST');
        const spec = options.liveFields.get(field.name.value);
        if (!spec) return refuse(`Subscription.${field.name.value} has no live source`, 'BAD_REQUEST');
        const fragments = document.definitions.filter((d): d is FragmentDefinitionNode => d.kind === Kind.FRAGMENT_DEFINITION);
        let request;
        try {
          request = liveRequest(options.schema, spec, operation, field, fragments, payload.variables ?? {});
        } catch (error) {
          if (error instanceof GraphQLError) return [error];
          throw error;
        }
        reserve(state);
        state.starting.add(id);
        let joined;
        try {
          joined = await hub.join({ ...request, caller: state.caller, correlationId: randomUUID() }, field.alias?.value ?? field.name.value);
        } catch (error) {
          unreserve(state);
          logger.error({ err: error }, 'subscription could not start');
          return refuse('The subscription could not start', 'INTERNAL_SERVER_ERROR');
        } finally {
          state.starting.delete(id);
        }
        if ('errors' in joined) {
          unreserve(state);
          return joined.errors.map((e) => new GraphQLError(e.message, { extensions: e.extensions }));
        }
        if (!connections.has(ctx)) {
          // The client went away while its subscription was starting: onClose has run already.
          joined.subscriber.close();
          unreserve(state);
          return refuse('The connection closed', 'BAD_REQUEST');
        }
        state.subscribers.set(id, joined.subscriber);
        // The rest of graphql-ws's path: `subscribe` below hands out this subscriber.
        return { schema: options.schema, document, operationName: payload.operationName, variableValues: payload.variables, contextValue: { subscriber: joined.subscriber } };
      },
      subscribe: (args) => (args.contextValue as { subscriber: Subscriber }).subscriber as never,
      onComplete: (ctx, id) => {
        const state = connections.get(ctx);
        if (state) release(state, id);
      },
      onClose: (ctx) => {
        const state = connections.get(ctx);
        if (!state) return;
        for (const id of [...state.subscribers.keys()]) release(state, id);
        connections.delete(ctx);
      },
    },
    wss,
  );

  return {
    hub,
    /** Subscriptions per user right now (a leak shows here and in hub.stats()). */
    openSubscriptions: () => [...perUser.values()].reduce((a, b) => a + b, 0),
    async close() {
      await disposable.dispose();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

/**
 * The query that fetches the subscribed entity: the @live query field (its `$arg` variables
 * renamed so they cannot meet the client's), aliased `_live`, with the subscriber's selection
 * set plus the terminal field; the client's variables that the selection uses; its fragments.
 */
function liveRequest(
  schema: GraphQLSchema,
  spec: LiveFieldSpec,
  operation: OperationDefinitionNode,
  field: FieldNode,
  fragments: FragmentDefinitionNode[],
  variables: Record<string, unknown>,
) {
  const fieldDef = schema.getSubscriptionType()!.getFields()[field.name.value]!;
  const args = getArgumentValues(fieldDef, field, variables);
  const subject = spec.subject.replace(/\{(\w+)\}/g, (_, name: string) => String(args[name] ?? ''));
  try {
    assertLiveSubject(subject);
  } catch {
    throw new GraphQLError('The arguments do not name a live entity', { extensions: { code: 'BAD_USER_INPUT' } });
  }
  const template = (parse(`{ ${spec.query} }`).definitions[0] as OperationDefinitionNode).selectionSet.selections[0] as FieldNode;
  const argVariable = (name: string) => `liveArg_${name}`;
  const queryField = visit(template, { Variable: (node) => ({ ...node, name: { ...node.name, value: argVariable(node.name.value) } }) }) as FieldNode;
  const terminal: FieldNode = { kind: Kind.FIELD, alias: { kind: Kind.NAME, value: TERMINAL_ALIAS }, name: { kind: Kind.NAME, value: spec.terminalField } };
  const selection: FieldNode = {
    ...queryField,
    alias: { kind: Kind.NAME, value: LIVE_ALIAS },
    selectionSet: { kind: Kind.SELECTION_SET, selections: [...(field.selectionSet?.selections ?? []), terminal] },
  };
  // Only what the fetch uses: an unused variable or fragment fails validation.
  const used = new Set<string>();
  const usedFragments = new Map<string, FragmentDefinitionNode>();
  const byName = new Map(fragments.map((f) => [f.name.value, f]));
  const collect = (node: FieldNode | FragmentDefinitionNode) =>
    visit(node, {
      Variable: (v) => {
        used.add(v.name.value);
      },
      FragmentSpread: (spread) => {
        const fragment = byName.get(spread.name.value);
        if (fragment && !usedFragments.has(fragment.name.value)) {
          usedFragments.set(fragment.name.value, fragment);
          collect(fragment);
        }
      },
    });
  collect(selection);
  const clientDefinitions = (operation.variableDefinitions ?? []).filter((d) => used.has(d.variable.name.value));
  const argDefinitions: VariableDefinitionNode[] = fieldDef.args
    .filter((arg) => used.has(argVariable(arg.name)))
    .map((arg) => ({
      kind: Kind.VARIABLE_DEFINITION,
      variable: { kind: Kind.VARIABLE, name: { kind: Kind.NAME, value: argVariable(arg.name) } },
      type: parseType(String(arg.type)),
    }));
  const fetchOperation: OperationDefinitionNode = {
    kind: Kind.OPERATION_DEFINITION,
    operation: OperationTypeNode.QUERY,
    name: { kind: Kind.NAME, value: `Live_${getNamedType(fieldDef.type).name}` },
    variableDefinitions: [...clientDefinitions, ...argDefinitions],
    selectionSet: { kind: Kind.SELECTION_SET, selections: [selection] },
  };
  const document = print({ kind: Kind.DOCUMENT, definitions: [fetchOperation, ...usedFragments.values()] });
  const fetchVariables: Record<string, unknown> = {};
  for (const definition of clientDefinitions) {
    const name = definition.variable.name.value;
    if (name.startsWith('liveArg_')) throw new GraphQLError('Variable names starting with liveArg_ are reserved', { extensions: { code: 'BAD_USER_INPUT' } });
    if (name in variables) fetchVariables[name] = variables[name];
  }
  for (const arg of fieldDef.args) if (used.has(argVariable(arg.name))) fetchVariables[argVariable(arg.name)] = args[arg.name];
  return { subject, document, variables: fetchVariables, terminalValues: spec.terminalValues };
}

/** The expiry of a token `authenticate` accepted (it verified the signature and `exp`). */
function expiryOf(authorization: string): number {
  const token = authorization.trim().replace(/^Bearer\s+/i, '');
  const { exp } = decodeJwt(token);
  return typeof exp === 'number' ? exp * 1000 : Date.now();
}
