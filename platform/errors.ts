import { GraphQLError } from 'graphql';

/**
 * Error codes are defined once here and mapped once at the edge (STYLE 3).
 *
 * - `user` errors are expected business outcomes (wrong password, plan limit): mutations return
 *   them in `userErrors { code field message }` and the request succeeds.
 * - the others become GraphQL errors with `extensions.code`.
 */
export type ErrorKind = 'user' | 'unauthenticated' | 'forbidden' | 'bad_input';

const GRAPHQL_CODE: Record<Exclude<ErrorKind, 'user'>, string> = {
  unauthenticated: 'UNAUTHENTICATED',
  forbidden: 'FORBIDDEN',
  bad_input: 'BAD_USER_INPUT',
};

export class DomainError extends Error {
  constructor(
    readonly kind: ErrorKind,
    readonly code: string,
    message: string,
    readonly field: string | null = null,
  ) {
    super(message);
    this.name = 'DomainError';
  }
}

/** An expected business outcome, reported in the payload's userErrors. */
export const userError = (code: string, message: string, field: string | null = null) =>
  new DomainError('user', code, message, field);

export const unauthenticated = (message = 'Authentication required') =>
  new DomainError('unauthenticated', 'UNAUTHENTICATED', message);

export const forbidden = (message = 'Not allowed') => new DomainError('forbidden', 'FORBIDDEN', message);

/** Malformed input (an argument out of range, a cursor that was not ours): BAD_USER_INPUT. */
export const badInput = (message: string, field: string | null = null) =>
  new DomainError('bad_input', 'BAD_USER_INPUT', message, field);


export interface UserErrorShape {
  code: string;
  field: string | null;
  message: string;
}

/**
 * Runs a mutation body; a `user` DomainError becomes `{ userErrors: [...] }` with every other
 * payload field null, anything else propagates to the error formatter.
 */
export async function mutationPayload<T extends object>(
  body: () => Promise<T>,
): Promise<T & { userErrors: UserErrorShape[] }> {
  try {
    return { ...(await body()), userErrors: [] };
  } catch (error) {
    if (error instanceof DomainError && error.kind === 'user') {
      return { userErrors: [{ code: error.code, field: error.field, message: error.message }] } as T & {
        userErrors: UserErrorShape[];
      };
    }
    throw error;
  }
}

/**
 * The GraphQL error for a DomainError, with its stable code. No HTTP status: these fail one
 * field, and the response still carries the data of the others (a 401 would make clients drop it).
 */
export function toGraphQLError(error: DomainError): GraphQLError {
  const code = error.kind === 'user' ? error.code : GRAPHQL_CODE[error.kind];
  return new GraphQLError(error.message, { extensions: { code, ...(error.field ? { field: error.field } : {}) } });
}
