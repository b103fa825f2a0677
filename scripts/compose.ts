/**
 * npm run compose            writes schema/supergraph.graphql from schema/<subgraph>.graphql
 * npm run compose -- --check exits 1, naming the problem, when composition fails or the
 *                            committed supergraph differs from what composition gives now
 * --schema-dir DIR and --supergraph FILE read and write elsewhere (tests use them).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { composeSupergraph, SUPERGRAPH_PATH } from '../gateway/supergraph.js';
import { SCHEMA_DIR } from '../platform/paths.js';

const { values } = parseArgs({
  options: { check: { type: 'boolean', default: false }, 'schema-dir': { type: 'string' }, supergraph: { type: 'string' } },
});
const target = values.supergraph ?? SUPERGRAPH_PATH;
const result = await composeSupergraph(values['schema-dir'] ?? SCHEMA_DIR);
if (!result.ok) {
  console.error(`Composition failed:\n${result.errors.map((e) => `  - ${e}`).join('\n')}`);
  process.exit(1);
}
if (values.check) {
  const committed = await readFile(target, 'utf8').catch(() => null);
  if (committed !== result.supergraphSdl) {
    console.error(`${target} is ${committed === null ? 'missing' : 'stale'}: run \`npm run compose\` and commit it.`);
    process.exit(1);
  }
  console.log(`${target} is up to date.`);
} else {
  await writeFile(target, result.supergraphSdl);
  console.log(`Wrote ${target} from ${result.subgraphs.join(', ')}.`);
}
