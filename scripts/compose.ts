/**
 * npm run compose            writes schema/supergraph.graphql from schema/<subgraph>.graphql
 * npm run compose -- --check exits 1, naming the problem, when composition fails or the
 *                            committed supergraph differs from what composition gives now
 */
import { readFile, writeFile } from 'node:fs/promises';
import { composeSupergraph, SUPERGRAPH_PATH } from './supergraph.js';

const check = process.argv.includes('--check');
const result = await composeSupergraph();
if (!result.ok) {
  console.error(`Composition failed:\n${result.errors.map((e) => `  - ${e}`).join('\n')}`);
  process.exit(1);
}
if (check) {
  const committed = await readFile(SUPERGRAPH_PATH, 'utf8').catch(() => null);
  if (committed !== result.supergraphSdl) {
    console.error(`${committed === null ? 'schema/supergraph.graphql is missing' : 'schema/supergraph.graphql is stale'}: run \`npm run compose\` and commit it.`);
    process.exit(1);
  }
  console.log('schema/supergraph.graphql is up to date.');
} else {
  await writeFile(SUPERGRAPH_PATH, result.supergraphSdl);
  console.log(`Wrote schema/supergraph.graphql from ${result.subgraphs.join(', ')}.`);
}
