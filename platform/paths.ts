import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The folder holding package.json, found from this module, so paths hold from source (tsx) and from dist/ alike. */
function findProjectRoot(from: string): string {
  for (let dir = from; dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
  }
  throw new Error(`No package.json above ${from}`);
}

const PROJECT_ROOT = findProjectRoot(dirname(fileURLToPath(import.meta.url)));
/** schema/<subgraph>.graphql, schema/supergraph.graphql, schema/events/. */
export const SCHEMA_DIR = join(PROJECT_ROOT, 'schema');
