import type { Shutdown } from '../platform/lifecycle.js';
import type { Logger } from '../platform/log.js';

export interface StopControl {
  /** True once a signal (or a failed start) asked the process to stop. */
  readonly requested: boolean;
  /** Stops everything `steps` holds, logs the outcome and exits with `code` (1 if stopping failed). */
  now(reason: string, code?: number): Promise<never>;
}

/**
 * A process of the distributed mode stops on SIGTERM (Kubernetes, docker) or SIGINT (Ctrl-C):
 * the steps run newest first (servers drain before the connections they use close). A second
 * signal while stopping is ignored; the orchestrator's own deadline is the backstop.
 */
export function onStopSignals(steps: Shutdown, logger: Logger): StopControl {
  let stopping: Promise<never> | null = null;
  const control: StopControl = {
    get requested() {
      return stopping !== null;
    },
    now(reason, code = 0) {
      stopping ??= (async () => {
        logger.info({ reason }, 'shutting down');
        let exitCode = code;
        try {
          await steps.close();
          logger.info('stopped');
        } catch (error) {
          logger.error({ err: error }, 'unclean shutdown');
          exitCode = 1;
        }
        process.exit(exitCode);
      })();
      return stopping;
    },
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => void control.now(signal));
  return control;
}
