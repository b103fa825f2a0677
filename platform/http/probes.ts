import type { Logger } from '../log.js';
import { sendJson } from './graphql-http.js';
import type { Handler } from './server.js';
import { withinDeadline } from '../deadline.js';

/** A readiness check: resolves when its dependency is fine, throws (or times out) when not. */
export type ReadinessCheck = () => Promise<unknown>;

/** Each check's deadline: a dependency that hangs is as unready as one that refuses. */
const CHECK_TIMEOUT_MS = 2_000;

/** `GET /health`: liveness. 200 while the process runs and serves HTTP; it checks nothing else. */
export function healthRoute(component: Record<string, string>): Handler {
  return (_req, res) => sendJson(res, 200, { status: 'ok', ...component });
}

/**
 * `GET /ready`: readiness. 200 when every check passes (the database answers, NATS answers,
 * migrations are applied), else 503 naming the checks that failed. From the moment the process
 * starts stopping it answers 503, so load balancers stop sending before the server drains.
 */
export function readyRoute(component: Record<string, string>, checks: Record<string, ReadinessCheck>, options: { stopping: () => boolean; logger: Logger }): Handler {
  return async (_req, res) => {
    if (options.stopping()) return sendJson(res, 503, { status: 'stopping', ...component });
    const results = await Promise.all(
      Object.entries(checks).map(async ([name, check]) => {
        try {
          await withinDeadline(check(), CHECK_TIMEOUT_MS);
          return [name, 'ok'] as const;
        } catch (error) {
          options.logger.warn({ err: error, check: name }, 'readiness check failed');
          return [name, error instanceof Error ? error.message : String(error)] as const;
        }
      }),
    );
    const ready = results.every(([, result]) => result === 'ok');
    sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'unavailable', ...component, checks: Object.fromEntries(results) });
  };
}
