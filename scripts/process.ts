/** What the processes of the distributed mode share: stopping on signals, finding the subgraphs, tracing. */
import { setTimeout as sleep } from 'node:timers/promises';
import { discoverSubgraphs, type DiscoveredSubgraphs } from '../gateway/subgraph-health.js';
import type { Config } from '../platform/config.js';
import type { Shutdown } from '../platform/lifecycle.js';
import type { Logger } from '../platform/log.js';
import { setupTracing } from '../platform/telemetry/tracing.js';
import { subgraphNames } from '../subgraphs/catalog.js';

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
export function onStopSignals(steps: Shutdown, logger: Logger, options: { delayMs?: number } = {}): StopControl {
  let stopping: Promise<never> | null = null;
  const control: StopControl = {
    get requested() {
      return stopping !== null;
    },
    now(reason, code = 0) {
      stopping ??= (async () => {
        logger.info({ reason, delayMs: options.delayMs ?? 0 }, 'shutting down');
        let exitCode = code;
        try {
          // Readiness already says no (it asks `requested`); load balancers get the delay to
          // stop sending before the servers close.
          if (options.delayMs && code === 0) await sleep(options.delayMs);
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

/** Where every subgraph is (SUBGRAPH_<NAME>_URL), or a message naming each bad setting and exit 1. */
export function subgraphsOrExit(config: Config): DiscoveredSubgraphs {
  try {
    return discoverSubgraphs(process.env, subgraphNames, { defaultTimeoutMs: config.SUBGRAPH_TIMEOUT_MS });
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  }
}

/**
 * OpenTelemetry for this process when a collector is named (OTEL_EXPORTER_OTLP_ENDPOINT), its
 * spans flushed last on stop; without one the tracing API stays a no-op.
 */
export function startTracing(config: Config, serviceName: string, steps: Shutdown): void {
  if (!config.OTEL_EXPORTER_OTLP_ENDPOINT) return;
  const tracing = setupTracing({ serviceName: config.OTEL_SERVICE_NAME ?? serviceName, otlpEndpoint: config.OTEL_EXPORTER_OTLP_ENDPOINT });
  steps.add('tracing', () => tracing.shutdown());
}
