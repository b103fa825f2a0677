import { Kind, validate, type GraphQLError, type OperationDefinitionNode } from 'graphql';
import { describe, expect, it } from 'vitest';
import { loadClientOperations, supergraphApiSchema } from './support/clients.js';

/**
 * The client operations in ../shared/clients are the public contract. An operation whose root
 * fields the supergraph has must validate, apart from the few fields of subgraphs still to come
 * listed in PENDING (each later subgraph empties its entries). An operation of a subgraph not
 * built yet may fail only because its fields and types are missing, never because the schema
 * contradicts it.
 */
const schema = supergraphApiSchema();
const operations = loadClientOperations();

const PENDING: Record<string, string[]> = {};
const NOT_YET_BUILT = [/^Cannot query field "\w+" on type "\w+"\./, /^Unknown type "\w+"\./];
const notYetBuilt = (error: GraphQLError) => NOT_YET_BUILT.some((re) => re.test(error.message));

function rootFieldsServed(op: OperationDefinitionNode): boolean {
  const root = op.operation === 'query' ? schema.getQueryType() : op.operation === 'mutation' ? schema.getMutationType() : schema.getSubscriptionType();
  const fields = root?.getFields() ?? {};
  return op.selectionSet.selections.every((s) => s.kind === Kind.FIELD && s.name.value in fields);
}

describe('client operations against the composed supergraph', () => {
  it('finds the client operations', () => {
    expect(operations.length).toBeGreaterThan(30);
  });

  const served = operations.filter((o) => rootFieldsServed(o.document.definitions[0] as OperationDefinitionNode));

  it.each(['identity.graphql', 'billing.graphql', 'story.graphql', 'media.graphql', 'collaboration.graphql', 'notification.graphql', 'admin.graphql'])('serves every operation of %s', (file) => {
    const ofFile = operations.filter((o) => o.file === file);
    expect(ofFile.length).toBeGreaterThan(0);
    expect(ofFile.filter((o) => !served.includes(o)).map((o) => o.name)).toEqual([]);
  });

  it.each(served.map((o) => [o.file, o.name, o] as const))('%s %s validates', (_file, name, op) => {
    expect(validate(schema, op.document).map((e) => e.message)).toEqual(PENDING[name] ?? []);
  });

  it.each(operations.filter((o) => !served.includes(o)).map((o) => [o.file, o.name, o] as const))(
    '%s %s fails only where its subgraph is missing',
    (_file, _name, op) => {
      expect(validate(schema, op.document).filter((e) => !notYetBuilt(e)).map((e) => e.message)).toEqual([]);
    },
  );
});
