import { GraphQLError, GraphQLScalarType, Kind, type ValueNode } from 'graphql';

type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** A literal in a query, as the JSON value it spells; `$variables` inside it are substituted. */
function literalValue(ast: ValueNode, variables: Record<string, unknown> | null | undefined): JsonValue {
  switch (ast.kind) {
    case Kind.STRING:
    case Kind.BOOLEAN:
      return ast.value;
    case Kind.INT:
    case Kind.FLOAT:
      return Number(ast.value);
    case Kind.NULL:
      return null;
    case Kind.LIST:
      return ast.values.map((value) => literalValue(value, variables));
    case Kind.OBJECT:
      return Object.fromEntries(ast.fields.map((field) => [field.name.value, literalValue(field.value, variables)]));
    case Kind.VARIABLE:
      return (variables?.[ast.name.value] ?? null) as JsonValue;
    case Kind.ENUM:
      throw new GraphQLError(`JSON cannot represent the enum value ${ast.value}; quote it`);
  }
}

/** Any JSON value, passed through as it is (event payloads are stored as jsonb). */
export const JSONScalar = new GraphQLScalarType<JsonValue, JsonValue>({
  name: 'JSON',
  serialize: (value) => value as JsonValue,
  parseValue: (value) => value as JsonValue,
  parseLiteral: literalValue,
});
