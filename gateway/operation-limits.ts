import type { ApolloServerOptionsWithGateway, ApolloServerPlugin, BaseContext } from '@apollo/server';
import { ApolloServerErrorCode } from '@apollo/server/errors';
import { maxAliasesRule } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthRule } from '@escape.tech/graphql-armor-max-depth';
import {
  GraphQLError,
  Kind,
  getOperationAST,
  parse,
  validate,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type ParseOptions,
  type SelectionSetNode,
  type ValidationContext,
  type ValidationRule,
  type ValueNode,
} from 'graphql';
import { withinDeadline } from '../platform/deadline.js';
import { HttpRefusal } from '../platform/http/graphql-http.js';

/**
 * What one operation may ask of the gateway. The defaults (DEFAULT_OPERATION_LIMITS, the same
 * as platform/config.ts's LIMIT_* settings) leave every operation in ../shared/clients at less
 * than half of each limit, whatever `first` it sends (operation-limits.unit.test.ts measures them).
 */
export interface OperationLimits {
  /** Deepest field nesting: a root field is 1; fragments add no level; `__schema` counts 0 (GraphiQL's introspection). */
  maxDepth: number;
  /** Aliased fields, through fragments once per use; an alias of `__typename` is free. */
  maxAliases: number;
  /** Distinct response keys at the operation's root (what the gateway plans and fetches separately). */
  maxRootFields: number;
  /** Lexical tokens in the document, counted by the parser, which stops at the first one over. */
  maxTokens: number;
  /** Objects the operation could return (estimateCost). */
  maxCost: number;
}

export const DEFAULT_OPERATION_LIMITS: Readonly<OperationLimits> = { maxDepth: 12, maxAliases: 30, maxRootFields: 20, maxTokens: 2_000, maxCost: 50_000 };

export const DEPTH_LIMIT_EXCEEDED = 'DEPTH_LIMIT_EXCEEDED';
export const ALIAS_LIMIT_EXCEEDED = 'ALIAS_LIMIT_EXCEEDED';
export const ROOT_FIELD_LIMIT_EXCEEDED = 'ROOT_FIELD_LIMIT_EXCEEDED';
export const TOKEN_LIMIT_EXCEEDED = 'TOKEN_LIMIT_EXCEEDED';
export const COST_LIMIT_EXCEEDED = 'COST_LIMIT_EXCEEDED';
export const VARIABLES_TOO_LARGE = 'VARIABLES_TOO_LARGE';
export const OPERATION_TIMEOUT = 'OPERATION_TIMEOUT';
const VALIDATION_LIMIT_CODES = new Set<unknown>([DEPTH_LIMIT_EXCEEDED, ALIAS_LIMIT_EXCEEDED, ROOT_FIELD_LIMIT_EXCEEDED]);

/**
 * The sizes the cost estimate assumes for lists. `first`/`last` omitted or null is the
 * subgraphs' default page, and at most 100 are served (platform/graphql/connection.ts); a list
 * without paging arguments (userErrors, a story's narrations) is taken to hold 10.
 */
export const LIST_SIZES = { defaultPage: 20, maxPage: 100, unpaged: 10 } as const;
const PAGE_ARGUMENTS = ['first', 'last'];

const limitError = (code: string, message: string, nodes?: OperationDefinitionNode) => new GraphQLError(message, { nodes, extensions: { code } });

// graphql-armor throws its error out of the validation visitor by default, which Apollo Server
// answers with a bare 500; reported instead, it is one validation error among the others. Its
// message starts "Syntax Error: ", which a depth or alias count is not.
const reportAs = (code: string) => (context: ValidationContext | null, error: GraphQLError) =>
  context?.reportError(limitError(code, error.message.replace(/^Syntax Error: /, '')));

function maxRootFieldsRule(max: number): ValidationRule {
  return (context) => ({
    OperationDefinition(operation) {
      const found = rootResponseKeys(operation.selectionSet, (name) => context.getFragment(name)).size;
      if (found > max) context.reportError(limitError(ROOT_FIELD_LIMIT_EXCEEDED, `Root field limit of ${max} exceeded, found ${found}.`, operation));
    },
  });
}

/** Fields repeated under one response key are merged at execution: the same root field once. */
function rootResponseKeys(
  selectionSet: SelectionSetNode,
  fragment: (name: string) => FragmentDefinitionNode | null | undefined,
  keys = new Set<string>(),
  seen = new Set<string>(),
): Set<string> {
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) keys.add((selection.alias ?? selection.name).value);
    else if (selection.kind === Kind.INLINE_FRAGMENT) rootResponseKeys(selection.selectionSet, fragment, keys, seen);
    else if (!seen.has(selection.name.value)) {
      seen.add(selection.name.value);
      const definition = fragment(selection.name.value);
      if (definition) rootResponseKeys(definition.selectionSet, fragment, keys, seen);
    }
  }
  return keys;
}

/** The limits that are properties of the document alone, as validation rules (every operation in it). */
export function limitRules(limits: OperationLimits): ValidationRule[] {
  return [
    maxDepthRule({ n: limits.maxDepth, flattenFragments: true, ignoreIntrospection: true, propagateOnRejection: false, onReject: [reportAs(DEPTH_LIMIT_EXCEEDED)] }),
    maxAliasesRule({ n: limits.maxAliases, propagateOnRejection: false, onReject: [reportAs(ALIAS_LIMIT_EXCEEDED)] }),
    maxRootFieldsRule(limits.maxRootFields),
  ];
}

/**
 * The number of objects `operation` could return, like GitHub's node limit: each object-typed
 * field counts 1, times the size of every list it is in. A list's size is the `first`/`last` of
 * its field, or of the connection it is directly in (`edges` takes the page size of the field
 * that returned the connection), so nested connections multiply. A variable's size is its value,
 * else its default in the operation; one that is not an integer counts as the largest page
 * (execution refuses it). An upper bound: @skip/@include are ignored, and every fragment counts
 * once per use, even one on a type the object may not have. Scalars, `__typename` and
 * introspection cost nothing.
 */
export function estimateCost(schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode, variables: Record<string, unknown> = {}): number {
  // Types are told apart by the schema's own methods and printed names, not graphql's isListType
  // & co: under vitest, which gives this file graphql's ESM build, the schema Apollo Server hands
  // the plugin is built by @apollo/gateway with the CommonJS one, and those predicates refuse it.
  const fieldOf = (typeName: string, fieldName: string) => {
    const type = schema.getType(typeName);
    const field = type && 'getFields' in type ? type.getFields()[fieldName] : undefined;
    return field && 'args' in field ? field : undefined;
  };
  const defaults = new Map((operation.variableDefinitions ?? []).map((d) => [d.variable.name.value, d.defaultValue]));
  const valueOf = (value: ValueNode | undefined): unknown => {
    if (value?.kind === Kind.VARIABLE) {
      const name = value.name.value;
      return Object.hasOwn(variables, name) ? variables[name] : valueOf(defaults.get(name));
    }
    if (value === undefined || value.kind === Kind.NULL) return null;
    return value.kind === Kind.INT ? Number(value.value) : Number.NaN;
  };
  const pageSize = (node: FieldNode): number => {
    const asked = (node.arguments ?? []).filter((arg) => PAGE_ARGUMENTS.includes(arg.name.value)).map((arg) => valueOf(arg.value));
    const given = asked.filter((value) => value !== null && value !== undefined);
    if (!given.length) return LIST_SIZES.defaultPage;
    return Math.max(...given.map((value) => (typeof value === 'number' && Number.isInteger(value) ? Math.max(0, value) : LIST_SIZES.maxPage)));
  };
  const fragments = new Map(
    document.definitions.filter((d): d is FragmentDefinitionNode => d.kind === Kind.FRAGMENT_DEFINITION).map((f) => [f.name.value, f]),
  );
  // Per fragment and inherited page size: fragments that spread fragments twice over stay linear.
  const fragmentCosts = new Map<string, number>();

  const costOf = (selectionSet: SelectionSetNode, typeName: string, inheritedPage: number | undefined): number => {
    let cost = 0;
    for (const selection of selectionSet.selections) {
      if (selection.kind === Kind.FIELD) {
        const field = selection.selectionSet && !selection.name.value.startsWith('__') ? fieldOf(typeName, selection.name.value) : undefined;
        if (!field || !selection.selectionSet) continue;
        const printed = String(field.type); // `[Story!]!`, `StoryConnection!`
        const returned = printed.replace(/[[\]!]/g, '');
        const paged = field.args.some((arg) => PAGE_ARGUMENTS.includes(arg.name)) ? pageSize(selection) : undefined;
        if (printed.startsWith('[')) cost += (paged ?? inheritedPage ?? LIST_SIZES.unpaged) * (1 + costOf(selection.selectionSet, returned, undefined));
        else cost += 1 + costOf(selection.selectionSet, returned, paged);
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        cost += costOf(selection.selectionSet, selection.typeCondition?.name.value ?? typeName, inheritedPage);
      } else {
        const key = `${selection.name.value}/${inheritedPage}`;
        if (!fragmentCosts.has(key)) {
          fragmentCosts.set(key, 0); // a fragment cycle (refused by validation) adds nothing
          const fragment = fragments.get(selection.name.value);
          fragmentCosts.set(key, fragment ? costOf(fragment.selectionSet, fragment.typeCondition.name.value, inheritedPage) : 0);
        }
        cost += fragmentCosts.get(key)!;
      }
    }
    return cost;
  };

  const root = schema.getRootType(operation.operation);
  return root ? costOf(operation.selectionSet, root.name, undefined) : 0;
}

function costError(schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode, variables: Record<string, unknown>, max: number) {
  const cost = estimateCost(schema, document, operation, variables);
  return cost > max ? limitError(COST_LIMIT_EXCEEDED, `Cost limit of ${max} exceeded, found ${cost}.`, operation) : undefined;
}

// graphql-js's own wording (16.15 writes "more that"), pinned by operation-limits.unit.test.ts.
const TOKEN_LIMIT_MESSAGE = /^Syntax Error: Document contains more tha[nt] \d+ tokens/;

/** `parse` that stops at the first token over the limit, refusing with TOKEN_LIMIT_EXCEEDED. */
export function parseWithinLimits(source: string, limits: Pick<OperationLimits, 'maxTokens'>, options: ParseOptions = {}): DocumentNode {
  try {
    return parse(source, { ...options, maxLexicalTokens: limits.maxTokens });
  } catch (error) {
    if (!(error instanceof GraphQLError) || !TOKEN_LIMIT_MESSAGE.test(error.message)) throw error;
    throw new GraphQLError(error.message, { source: error.source, positions: error.positions, extensions: { code: TOKEN_LIMIT_EXCEEDED } });
  }
}

/**
 * The limit errors of a parsed document, for a server that validates documents itself (the
 * subscription server): depth, aliases and root fields of every operation in it, and the cost
 * of the one `operationName` selects, with its variables. Empty when it is within the limits.
 */
export function documentLimitErrors(
  schema: GraphQLSchema,
  document: DocumentNode,
  variables: Record<string, unknown> | null | undefined,
  limits: OperationLimits,
  operationName?: string | null,
): GraphQLError[] {
  const errors = [...validate(schema, document, limitRules(limits))];
  const operation = getOperationAST(document, operationName);
  const cost = operation && costError(schema, document, operation, variables ?? {}, limits.maxCost);
  return cost ? [...errors, cost] : errors;
}

/**
 * The options to spread into `new ApolloServer({...})`: the tokens as a parse option, depth,
 * aliases and root fields as validation rules, the cost checked by a plugin once the operation
 * and its variables are known (a validated document is cached without its variables).
 *
 * Apollo Server gives every parse error the code GRAPHQL_PARSE_FAILED and every validation
 * error GRAPHQL_VALIDATION_FAILED, whatever code the error carried (internalErrorClasses.js sets
 * `code` after spreading the error's extensions), both with status 400. The plugin puts each
 * limit's own code back in `didEncounterErrors`, which Apollo runs on those very error objects
 * just before formatting them; plugins listed after it (the access log) see the limit's code.
 */
export function apolloLimits<TContext extends BaseContext = BaseContext>(limits: OperationLimits) {
  const plugin: ApolloServerPlugin<TContext> = {
    async requestDidStart() {
      return {
        async didResolveOperation({ schema, document, operation, request }) {
          if (!operation) return;
          const error = costError(schema, document, operation, request.variables ?? {}, limits.maxCost);
          // Thrown here, an error is answered as it is: its status comes from `http`, else 500.
          if (error) throw new GraphQLError(error.message, { nodes: error.nodes, extensions: { ...error.extensions, http: { status: 400 } } });
        },
        async didEncounterErrors({ errors }) {
          for (const error of errors) {
            const code = error.extensions.code;
            const cause = (error.originalError as Partial<GraphQLError> | undefined)?.extensions?.code;
            if (code === ApolloServerErrorCode.GRAPHQL_VALIDATION_FAILED && VALIDATION_LIMIT_CODES.has(cause)) error.extensions.code = cause;
            if (code === ApolloServerErrorCode.GRAPHQL_PARSE_FAILED && TOKEN_LIMIT_MESSAGE.test(error.message)) error.extensions.code = TOKEN_LIMIT_EXCEEDED;
          }
        },
      };
    },
  };
  return {
    parseOptions: { maxLexicalTokens: limits.maxTokens } satisfies ParseOptions,
    validationRules: limitRules(limits),
    plugins: [plugin],
  };
}

/**
 * Refuses a request whose variables, as JSON, exceed `maxBytes` (a batch: all its operations'
 * together; variables given as a JSON string count as they are). A GET's variables are in its
 * URL, which Node already holds to its header size limit (16 KiB).
 */
export function checkVariablesSize(body: unknown, maxBytes: number): void {
  const operations = Array.isArray(body) ? body : [body];
  let bytes = 0;
  for (const operation of operations) {
    const variables = typeof operation === 'object' && operation !== null ? (operation as { variables?: unknown }).variables : undefined;
    if (variables === undefined || variables === null) continue;
    bytes += Buffer.byteLength(typeof variables === 'string' ? variables : JSON.stringify(variables));
  }
  if (bytes > maxBytes) throw new HttpRefusal(413, VARIABLES_TOO_LARGE, `Variables limit of ${maxBytes} bytes exceeded, found ${bytes}.`);
}

type GatewayInterface = ApolloServerOptionsWithGateway<BaseContext>['gateway'];

export interface OperationTimeouts {
  defaultMs: number;
  /** By operation name, overriding the default. */
  byOperation: Record<string, number>;
}

/**
 * The gateway, with each operation's execution answered `data: null` and OPERATION_TIMEOUT once
 * its deadline passes (status 200, as GraphQL over HTTP asks when `data` is present). The
 * execution itself is not cancelled (@apollo/gateway takes no signal); its subgraph calls end
 * at their own timeouts, and its result is dropped. Parsing and validation are not timed.
 */
export function withOperationTimeouts(gateway: GatewayInterface, timeouts: OperationTimeouts): GatewayInterface {
  // Own keys only: an operation named `toString` must not find Object.prototype's.
  const deadlineOf = (name: string | null) => (name !== null && Object.hasOwn(timeouts.byOperation, name) ? timeouts.byOperation[name]! : timeouts.defaultMs);
  return {
    onSchemaLoadOrUpdate: (callback) => gateway.onSchemaLoadOrUpdate(callback),
    stop: () => gateway.stop(),
    async load(options) {
      const loaded = await gateway.load(options);
      const executor = loaded.executor;
      if (!executor) return loaded;
      return {
        ...loaded,
        async executor(requestContext) {
          const ms = deadlineOf(requestContext.operationName);
          // Settled into a value, so the only rejection withinDeadline can give is its own.
          const settled = (async () => executor(requestContext))().then((result) => ({ result }), (error: unknown) => ({ error }));
          let outcome: Awaited<typeof settled>;
          try {
            outcome = await withinDeadline(settled, ms);
          } catch {
            return { data: null, errors: [new GraphQLError(`Operation time limit of ${ms} ms exceeded.`, { extensions: { code: OPERATION_TIMEOUT } })] };
          }
          if ('error' in outcome) throw outcome.error;
          return outcome.result;
        },
      };
    },
  };
}
