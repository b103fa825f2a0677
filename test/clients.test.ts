import { validate, type GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import { loadClientOperations, supergraphApiSchema } from './support/clients.js';

/**
 * The client operations in ../shared/clients are the public contract. Every one the current
 * supergraph can serve must validate; the rest may fail only because their subgraph has not
 * been built yet (unknown fields or types), never because the schema contradicts them.
 */
const schema = supergraphApiSchema();
const operations = loadClientOperations();
const NOT_YET_BUILT = [/^Cannot query field "\w+" on type "\w+"\./, /^Unknown type "\w+"\./];
const notYetBuilt = (error: GraphQLError) => NOT_YET_BUILT.some((re) => re.test(error.message));

// Operations of subgraphs already in the supergraph; Me waits for billing's `membership`.
const SERVED = ['Register', 'LogIn', 'RefreshSession', 'LogOut', 'SignInWithProvider', 'LinkProvider', 'UpdateProfile', 'DeleteAccount'];

describe('client operations against the composed supergraph', () => {
  it('finds the client operations', () => {
    expect(operations.length).toBeGreaterThan(30);
  });

  it.each(SERVED)('%s validates', (name) => {
    const op = operations.find((o) => o.name === name)!;
    expect(validate(schema, op.document).map((e) => e.message)).toEqual([]);
  });

  it('Me validates except for billing\'s membership', () => {
    const me = operations.find((o) => o.name === 'Me')!;
    expect(validate(schema, me.document).map((e) => e.message)).toEqual(['Cannot query field "membership" on type "User".']);
  });

  it.each(operations.map((o) => [o.file, o.name, o] as const))('%s %s fails only where its subgraph is missing', (_file, _name, op) => {
    const errors = validate(schema, op.document);
    expect(errors.filter((e) => !notYetBuilt(e)).map((e) => e.message)).toEqual([]);
  });
});
