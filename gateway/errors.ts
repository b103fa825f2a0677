import type { GraphQLFormattedError } from 'graphql';
import type { Logger } from '../platform/log.js';

/** Gateway-internal detail that must not reach clients: subgraph names, URLs, raw responses. */
const INTERNAL_EXTENSIONS = ['serviceName', 'response', 'exception', 'stacktrace'];

/**
 * The gateway's last word on errors. Coded errors (UNAUTHENTICATED, BAD_USER_INPUT, …) pass
 * with their code; anything uncoded or internal (a subgraph that is down answers
 * "request to http://10.0.0.7:4001/graphql failed, ECONNREFUSED") is logged in full and
 * answered with a bare message, so the topology of the platform never leaks.
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
