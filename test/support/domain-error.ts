import { DomainError } from '../../platform/errors.js';

/** What `fn` throws as `code:field` if it is a DomainError, 'ok' if it throws nothing; anything else propagates. */
export function domainErrorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (error instanceof DomainError) return `${error.code}:${error.field}`;
    throw error;
  }
  return 'ok';
}
