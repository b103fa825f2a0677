import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { composeServices } from '@apollo/composition';
import { parse } from 'graphql';
import { subgraphModules } from '../subgraphs/index.js';

export const SUPERGRAPH_PATH = fileURLToPath(new URL('../schema/supergraph.graphql', import.meta.url));

/**
 * The URL each subgraph has in the committed supergraph: its service name in the distributed
 * mode (docker-compose, Kubernetes). The all-in-one mode and SUBGRAPH_URL_<NAME> override it.
 */
export const defaultSubgraphUrl = (name: string) => `http://${name}:4001/graphql`;

export type Composition =
  | { ok: true; supergraphSdl: string; subgraphs: string[] }
  | { ok: false; errors: string[] };

export async function composeSupergraph(): Promise<Composition> {
  const services = await Promise.all(
    subgraphModules.map(async ({ name }) => {
      const sdl = await readFile(new URL(`../schema/${name}.graphql`, import.meta.url), 'utf8');
      return { name, url: defaultSubgraphUrl(name), typeDefs: parse(sdl) };
    }),
  );
  const result = composeServices(services);
  if (result.errors?.length || !result.supergraphSdl) {
    return { ok: false, errors: (result.errors ?? []).map((e) => e.message) };
  }
  return { ok: true, supergraphSdl: result.supergraphSdl, subgraphs: services.map((s) => s.name) };
}
