import type { Config } from '../platform/config.js';
import type { EventTransport } from '../platform/events/transport.js';
import { listen } from '../platform/http/server.js';
import { Shutdown } from '../platform/lifecycle.js';
import type { Logger } from '../platform/log.js';
import { startSubgraph, type RunningSubgraph } from '../platform/subgraph/runtime.js';
import { createGateway, gatewaySettings, type Gateway } from './gateway.js';
import type { JobQueue } from '../platform/jobs/queue.js';
import type { LiveBus } from '../platform/live/live.js';
import { jobQueueFor, liveBusFor } from '../platform/messaging.js';
import { subgraphModules } from '../subgraphs/index.js';
import { Metrics } from '../platform/telemetry/metrics.js';

export interface AllInOneOptions {
  config: Config;
  databaseUrl: string;
  transport: EventTransport;
  /** Live updates and job queues; made from the config (NATS_URL, else in process) when not given. */
  live?: LiveBus;
  jobs?: JobQueue;
  logger: Logger;
  /** Tests keep the relay off to show that committed events wait in the outbox. */
  relay?: boolean;
  /** npm start passes one that also collects process metrics. */
  metrics?: Metrics;
}

export interface AllInOne {
  gatewayUrl: string;
  subgraphs: RunningSubgraph[];
  gateway: Gateway;
  live: LiveBus;
  metrics: Metrics;
  close(): Promise<void>;
}

/**
 * The all-in-one mode: every subgraph on its own loopback port (a free one, so several stacks
 * can run side by side), then the gateway on config.HOST:config.PORT pointing at them.
 */
export async function startAllInOne(options: AllInOneOptions): Promise<AllInOne> {
  const { config, logger } = options;
  const subgraphs: RunningSubgraph[] = [];
  // Filled in as each subgraph listens; read later by whoever asks (the audit subgraph).
  let listening: string | null = null;
  const topology = {
    mode: 'ALL_IN_ONE' as const,
    subgraphs: () => subgraphs.map(({ name, url }) => ({ name, url })),
    publicUrl: () => {
      const url = config.PUBLIC_URL ?? listening;
      if (!url) throw new Error('the gateway is not listening yet');
      return url.replace(/\/+$/, '');
    },
  };
  const shutdown = new Shutdown();
  const close = () => shutdown.close();
  // One registry for the process: every subgraph's /metrics and the gateway's show all of it.
  const metrics = options.metrics ?? new Metrics();
  try {
    const live = options.live ?? (await liveBusFor(config, logger));
    if (!options.live) shutdown.add('live bus', () => live.close());
    const jobs = metrics.instrumentJobs(options.jobs ?? (await jobQueueFor(config, logger)));
    if (!options.jobs) shutdown.add('job queue', () => jobs.close());
    for (const module of subgraphModules) {
      const started = Date.now();
      const subgraph = await startSubgraph(module, {
        config,
        databaseUrl: options.databaseUrl,
        transport: options.transport,
        live,
        jobs,
        logger,
        host: '127.0.0.1',
        port: 0,
        migrate: true,
        relay: options.relay,
        topology,
        metrics,
      });
      subgraphs.push(subgraph);
      shutdown.add(`subgraph ${module.name}`, () => subgraph.close());
      logger.info({ subgraph: module.name, url: subgraph.url, ms: Date.now() - started }, 'subgraph ready');
    }
    const urls = Object.fromEntries(subgraphs.map((s) => [s.name, s.url]));
    const gateway = await createGateway({ ...gatewaySettings(config, urls), live, logger, metrics });
    shutdown.add('gateway', () => gateway.stop());
    listening = await listen(gateway.http, config.PORT, config.HOST);
    const gatewayUrl = `${listening}/graphql`;
    return { gatewayUrl, subgraphs, gateway, live, metrics, close };
  } catch (error) {
    await close().catch((closeError: unknown) => logger.error({ err: closeError }, 'cleanup after a failed start failed'));
    throw error;
  }
}
