import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { composeServices } from '@apollo/composition';
import fed from '@apollo/federation-internals';
import { buildSchema, parse, type GraphQLSchema } from 'graphql';
import { SCHEMA_DIR } from '../platform/paths.js';
import { subgraphModules } from '../subgraphs/index.js';

export const SUPERGRAPH_PATH = join(SCHEMA_DIR, 'supergraph.graphql');

/**
 * The URL each subgraph has in the committed supergraph: its service name in the distributed
 * mode (docker-compose, Kubernetes). The all-in-one mode overrides it with the loopback ports it picks.
 */
export const defaultSubgraphUrl = (name: string) => `http://${name}:4001/graphql`;

export type Composition =
  | { ok: true; supergraphSdl: string; subgraphs: string[] }
  | { ok: false; errors: string[] };

/** Composes schema/<subgraph>.graphql (or the same files under `schemaDir`) into a supergraph. */
export async function composeSupergraph(schemaDir = SCHEMA_DIR): Promise<Composition> {
  const services = await Promise.all(
    subgraphModules.map(async ({ name }) => {
      const sdl = await readFile(join(schemaDir, `${name}.graphql`), 'utf8');
      return { name, url: defaultSubgraphUrl(name), typeDefs: parse(sdl) };
    }),
  );
  const result = composeServices(services);
  if (result.errors?.length || !result.supergraphSdl) {
    return { ok: false, errors: (result.errors ?? []).map((e) => e.message) };
  }
  return { ok: true, supergraphSdl: result.supergraphSdl, subgraphs: services.map((s) => s.name) };
}

/**
 * The schema clients see: the supergraph without federation's internals. Through SDL, because
 * federation-internals is CommonJS with a graphql-js instance of its own.
 */
export function apiSchemaOf(supergraphSdl: string): GraphQLSchema {
  return buildSchema(fed.printSchema(fed.Supergraph.build(supergraphSdl).apiSchema()));
}
