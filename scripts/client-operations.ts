/**
 * The operations the web and mobile apps send, read from ../shared/clients beside the
 * repository, and the persisted-operations manifest made of them (`npm run persisted`,
 * scripts/persisted-operations.ts). The end-to-end tests send them: test/support/clients.ts
 * re-exports this module.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  Kind,
  parse,
  print,
  visit,
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type OperationTypeNode,
  validate,
} from 'graphql';
import { operationId, type PersistedQueryManifest } from '../gateway/persisted-operations.js';
import { apiSchemaOf, SUPERGRAPH_PATH } from '../gateway/supergraph.js';
import { SCHEMA_DIR } from '../platform/paths.js';

/** ../shared/clients beside the repository (found from the project root, so it holds from dist/ too). */
export const CLIENTS_DIR = join(dirname(SCHEMA_DIR), '..', 'shared', 'clients');

export interface ClientOperation {
  file: string;
  name: string;
  type: OperationTypeNode;
  /** The operation with every fragment it uses, ready to send. */
  document: DocumentNode;
  /** `document` printed by graphql's `print`: the text clients send, and the manifest's body. */
  source: string;
}

/**
 * Every named operation in `dir`'s .graphql files, each as a self-contained document: the
 * operation first, then the fragments it uses in the order it reaches them. Files and the
 * operations in them are read in a fixed order, so the result is the same on every machine.
 */
export function loadClientOperations(dir: string = CLIENTS_DIR): ClientOperation[] {
  const operations: ClientOperation[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.graphql')).sort()) {
    const doc = parse(readFileSync(join(dir, file), 'utf8'));
    const fragments = new Map(
      doc.definitions.filter((d): d is FragmentDefinitionNode => d.kind === Kind.FRAGMENT_DEFINITION).map((f) => [f.name.value, f]),
    );
    for (const op of doc.definitions.filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION)) {
      // A persisted operation is found by its name (the manifest, logs, OPERATION_TIMEOUTS_MS).
      if (!op.name) throw new Error(`${join(dir, file)}: an operation without a name (line ${op.loc?.startToken.line ?? '?'})`);
      const used = new Map<string, FragmentDefinitionNode>();
      const collect = (node: OperationDefinitionNode | FragmentDefinitionNode) =>
        visit(node, {
          FragmentSpread(spread) {
            const fragment = fragments.get(spread.name.value);
            if (fragment && !used.has(fragment.name.value)) {
              used.set(fragment.name.value, fragment);
              collect(fragment);
            }
          },
        });
      collect(op);
      const document: DocumentNode = { kind: Kind.DOCUMENT, definitions: [op, ...used.values()] };
      operations.push({ file, name: op.name.value, type: op.operation, document, source: print(document) });
    }
  }
  return operations;
}

export function clientOperation(name: string): string {
  const op = loadClientOperations().find((o) => o.name === name);
  if (!op) throw new Error(`No client operation named ${name} in ${CLIENTS_DIR}`);
  return op.source;
}

/** The API schema clients see, as the gateway builds it from the committed supergraph. */
export function supergraphApiSchema(path: string = SUPERGRAPH_PATH): GraphQLSchema {
  return apiSchemaOf(readFileSync(path, 'utf8'));
}

/** Why operations cannot be persisted: a name used twice, or not valid against the API schema. */
export function problemsOf(operations: ClientOperation[], schema: GraphQLSchema): string[] {
  const problems: string[] = [];
  const byName = new Map<string, ClientOperation>();
  for (const op of operations) {
    const twin = byName.get(op.name);
    if (twin) problems.push(`${op.file} ${op.name}: the name is taken by an operation of ${twin.file}`);
    byName.set(op.name, op);
  }
  for (const op of operations) {
    for (const error of validate(schema, op.document)) problems.push(`${op.file} ${op.name}: ${error.message}`);
  }
  return problems;
}

/** The manifest of `operations`: each body the text clients send, its id that text's sha256, sorted by name. */
export function manifestOf(operations: ClientOperation[]): PersistedQueryManifest {
  return {
    format: 'apollo-persisted-query-manifest',
    version: 1,
    operations: [...operations]
      // By UTF-16 code unit, not locale: the file is the same on every machine.
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map((op) => ({ id: operationId(op.source), name: op.name, type: op.type, body: op.source })),
  };
}

/** The manifest as the committed file holds it. */
export const manifestText = (manifest: PersistedQueryManifest): string => `${JSON.stringify(manifest, null, 2)}\n`;

/** The operations added, removed or changed between a committed manifest and the current one, by name. */
export function differencesOf(committed: PersistedQueryManifest, current: PersistedQueryManifest): string[] {
  const before = new Map(committed.operations.map((op) => [op.name, op]));
  const after = new Map(current.operations.map((op) => [op.name, op]));
  const differences: string[] = [];
  for (const [name, op] of after) {
    const old = before.get(name);
    if (!old) differences.push(`${name}: not in the manifest`);
    else if (old.id !== op.id) differences.push(`${name}: changed`);
    else if (old.type !== op.type) differences.push(`${name}: its type changed`);
  }
  for (const name of before.keys()) if (!after.has(name)) differences.push(`${name}: no longer a client operation`);
  return differences;
}
