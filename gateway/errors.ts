import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import type { Logger } from '../platform/log.js';

/** Gateway-internal detail that must not reach clients: subgraph URLs, raw responses, stacks. */
const INTERNAL_EXTENSIONS = ['serviceName', 'response', 'exception', 'stacktrace'];

/**
 * The codes of a subgraph the gateway could not get an answer from. The rest of the response
 * still comes (partial data); these say which part is missing and why, by the subgraph's name
 * only: never its address.
 */
export const SUBGRAPH_UNAVAILABLE = 'SUBGRAPH_UNAVAILABLE';
export const SUBGRAPH_TIMEOUT = 'SUBGRAPH_TIMEOUT';

/** A subgraph that is down, answered with a server error, or whose circuit is open. */
export function subgraphUnavailable(subgraph: string): GraphQLError {
  return new GraphQLError(`The ${subgraph} service is unavailable`, { extensions: { code: SUBGRAPH_UNAVAILABLE, subgraph } });
}

/** A subgraph that did not answer within its deadline. */
export function subgraphTimeout(subgraph: string, timeoutMs: number): GraphQLError {
  return new GraphQLError(`The ${subgraph} service did not answer within ${timeoutMs} ms`, { extensions: { code: SUBGRAPH_TIMEOUT, subgraph } });
}

/**
 * The gateway's last word on errors. Coded errors (UNAUTHENTICATED, BAD_USER_INPUT,
 * SUBGRAPH_UNAVAILABLE, …) pass with their code; anything uncoded or internal (a subgraph that
 * is down answers "request to http://10.0.0.7:4001/graphql failed, ECONNREFUSED") is logged in
 * full and answered with a bare message, so the topology of the platform never leaks.
 */
export function maskInternalErrors(logger: Logger) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const extensions = { ...formatted.extensions };
    for (const key of INTERNAL_EXTENSIONS) delete extensions[key];
    const code = extensions.code;
    if (!code || code === 'INTERNAL_SERVER_ERROR' || code === 'DOWNSTREAM_SERVICE_ERROR') {
      logger.error({ err: error, path: formatted.path, extensions: formatted.extensions }, 'internal error');
      return { message: 'Internal server error', ...(formatted.path ? { path: formatted.path } : {}), extensions: { code: 'INTERNAL_SERVER_ERROR' } };
    }
    return { ...formatted, extensions };
  };
}
