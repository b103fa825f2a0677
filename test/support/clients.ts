import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Kind, parse, print, visit, type DocumentNode, type FragmentDefinitionNode, type GraphQLSchema, type OperationDefinitionNode } from 'graphql';
import { apiSchemaOf, SUPERGRAPH_PATH } from '../../gateway/supergraph.js';

/** ../shared/clients beside the repository: the operations the web and mobile apps send. */
export const CLIENTS_DIR = fileURLToPath(new URL('../../../shared/clients/', import.meta.url));

export interface ClientOperation {
  file: string;
  name: string;
  /** The operation with every fragment it uses, ready to send. */
  document: DocumentNode;
  source: string;
}

/** Every named operation in ../shared/clients, each as a self-contained document. */
export function loadClientOperations(): ClientOperation[] {
  const operations: ClientOperation[] = [];
  for (const file of readdirSync(CLIENTS_DIR).filter((f) => f.endsWith('.graphql')).sort()) {
    const doc = parse(readFileSync(CLIENTS_DIR + file, 'utf8'));
    const fragments = new Map(
      doc.definitions.filter((d): d is FragmentDefinitionNode => d.kind === Kind.FRAGMENT_DEFINITION).map((f) => [f.name.value, f]),
    );
    for (const op of doc.definitions.filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION)) {
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
      operations.push({ file, name: op.name!.value, document, source: print(document) });
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
export function supergraphApiSchema(): GraphQLSchema {
  return apiSchemaOf(readFileSync(SUPERGRAPH_PATH, 'utf8'));
}

