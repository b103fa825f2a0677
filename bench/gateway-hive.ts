/**
 * Hive Gateway as its own process, for the gateway bench: the committed supergraph with each
 * subgraph's URL replaced by where this run's subgraph listens (SUBGRAPH_<NAME>_URL), served by
 * createGatewayRuntime on node:http: what the hive-gateway CLI does, minus its config file
 * (it too runs one process unless told to fork), so one process, as ours is.
 * Hive's defaults otherwise, with one plugin: the signing our subgraphs require.
 *
 * node --import tsx bench/gateway-hive.ts   (PORT, HOST, INTERNAL_SECRET, SUBGRAPH_<NAME>_URL)
 * HIVE_DEDUPE=off turns off Hive's deduplication of identical in-flight subgraph requests.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { createGatewayRuntime } from '@graphql-hive/gateway-runtime';
import { SCHEMA_DIR } from '../platform/paths.js';
import { useStoryloomSigning } from './gateway-hive-signing.js';

const required = (name: string): string => {
  const value = process.env[name];
  if (!value) {
    console.error(`bench/gateway-hive.ts: ${name} is required`);
    process.exit(2);
  }
  return value;
};

const JOIN_GRAPH = /@join__graph\(name: "([a-z]+)", url: "[^"]*"\)/g;
const sdl = readFileSync(join(SCHEMA_DIR, 'supergraph.graphql'), 'utf8');
const endpoints: Record<string, string> = {};
const supergraph = sdl.replace(JOIN_GRAPH, (_, name: string) => {
  endpoints[name] = `${required(`SUBGRAPH_${name.toUpperCase()}_URL`).replace(/\/+$/, '')}/graphql`;
  return `@join__graph(name: "${name}", url: "${endpoints[name]}")`;
});

const dedupe = process.env.HIVE_DEDUPE !== 'off';
const runtime = createGatewayRuntime({
  supergraph,
  plugins: () => [useStoryloomSigning({ internalSecret: required('INTERNAL_SECRET'), endpoints })],
  ...(dedupe ? {} : { transportEntries: { '*': { options: { deduplicateInflightRequests: false } } } }),
});
const server = createServer(runtime);
const port = Number(required('PORT'));
const host = process.env.HOST ?? '127.0.0.1';
server.listen(port, host, () => console.log(JSON.stringify({ msg: 'hive gateway ready', url: `http://${host}:${port}/graphql`, subgraphs: Object.keys(endpoints).length, dedupe })));

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    server.close();
    server.closeAllConnections();
    void Promise.resolve(runtime.dispose()).finally(() => process.exit(0));
  });
}
