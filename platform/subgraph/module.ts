import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SCHEMA_DIR } from '../paths.js';
import type { EntitySchema, MigrationObject, MikroORM } from '@mikro-orm/postgresql';
import { parse, type DocumentNode } from 'graphql';
import type { Config } from '../config.js';
import type { ConsumerDefinition } from '../events/consumer.types.js';
import type { EventTransport } from '../events/transport.js';
import type { JobQueue } from '../jobs/queue.js';
import type { LiveBus } from '../live/live.js';
import type { Handler } from '../http/server.js';
import type { Logger } from '../log.js';
import type { Resolvers } from './server.js';

/**
 * What a domain contributes to the platform. Copying one module (subgraphs/identity) is how a
 * new domain starts: its schema file, its entities and migrations, and a `build` that wires
 * its services and resolvers from the running pieces.
 */
export interface SubgraphModule {
  name: string;
  entities: EntitySchema<any>[];
  migrations: MigrationObject[];
  build(runtime: SubgraphRuntime): Promise<BuiltSubgraph> | BuiltSubgraph;
}

export interface SubgraphRuntime {
  config: Config;
  orm: MikroORM;
  transport: EventTransport;
  /** Live updates (job progress) for the gateway's subscriptions. */
  live: LiveBus;
  jobs: JobQueue;
  logger: Logger;
  topology: Topology;
  /** For background work that commits events outside requests and consumers: the relay publishes them at once. */
  onEventsCommitted(): void;
}

/** How the supergraph is deployed, as the audit subgraph reports it (systemStatus). */
export interface Topology {
  mode: 'ALL_IN_ONE' | 'DISTRIBUTED';
  /** Every subgraph's base URL (no /graphql), as far as known at the time of the call. */
  subgraphs(): { name: string; url: string }[];
  /**
   * Where clients reach the gateway (no /graphql): PUBLIC_URL, else the address the gateway
   * listens on, known once it listens (links are made later, when a request needs one).
   */
  publicUrl(): string;
}

export interface BuiltSubgraph {
  resolvers: Resolvers;
  routes?: Record<string, Handler>;
  /**
   * The domain's durable event consumers. The platform runs each with an inbox (a redelivered
   * event has no second effect), retries with backoff, and dead letters.
   */
  consumers?: ConsumerDefinition[];
  /** Background work of the domain (event consumers, workers); stopped before the database closes. */
  start?(): Promise<void>;
  stop?(): Promise<void>;
}


/** The subgraph's SDL, from schema/<name>.graphql (the same file `npm run compose` reads). */
export function subgraphTypeDefs(name: string): DocumentNode {
  return parse(readFileSync(join(SCHEMA_DIR, `${name}.graphql`), 'utf8'));
}
