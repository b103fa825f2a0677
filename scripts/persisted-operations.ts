/**
 * npm run persisted            writes gateway/persisted-operations.json from ../shared/clients:
 *                              every operation with the fragments it uses, printed by graphql's
 *                              `print`, its id the sha256 of that text, sorted by name
 * npm run persisted -- --check exits 1, naming the operations, when the committed manifest is
 *                              missing or differs from what the client operations give now
 * Either way it exits 1, writing nothing, when an operation does not validate against the API
 * schema of the committed supergraph (a manifest the gateway cannot serve is no manifest).
 * --clients DIR, --manifest FILE and --supergraph FILE read and write elsewhere (tests use them).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { MANIFEST_PATH, parseManifest } from '../gateway/persisted-operations.js';
import { SUPERGRAPH_PATH } from '../gateway/supergraph.js';
import { CLIENTS_DIR, differencesOf, loadClientOperations, manifestOf, manifestText, problemsOf, supergraphApiSchema, type ClientOperation } from './client-operations.js';

const { values } = parseArgs({
  options: {
    check: { type: 'boolean', default: false },
    clients: { type: 'string' },
    manifest: { type: 'string' },
    supergraph: { type: 'string' },
  },
});
const target = values.manifest ?? MANIFEST_PATH;

function fail(message: string): never {
  console.error(message);
  process.exit(1);
}

let operations: ClientOperation[] = [];
try {
  operations = loadClientOperations(values.clients ?? CLIENTS_DIR);
} catch (error) {
  fail(`Cannot read the client operations: ${(error as Error).message}`);
}
const problems = problemsOf(operations, supergraphApiSchema(values.supergraph ?? SUPERGRAPH_PATH));
if (problems.length) fail(`Client operations that the gateway cannot serve:\n${problems.map((p) => `  - ${p}`).join('\n')}`);

const manifest = manifestOf(operations);
const text = manifestText(manifest);
if (values.check) {
  const committed = await readFile(target, 'utf8').catch(() => null);
  if (committed === null) fail(`${target} is missing: run \`npm run persisted\` and commit it.`);
  if (committed !== text) {
    let differences: string[];
    try {
      differences = differencesOf(parseManifest(committed, target), manifest);
    } catch (error) {
      differences = [(error as Error).message];
    }
    if (!differences.length) differences = ['the operations are the same, the file is not as `npm run persisted` writes it'];
    fail(`${target} is stale: run \`npm run persisted\` and commit it.\n${differences.map((d) => `  - ${d}`).join('\n')}`);
  }
  console.log(`${target} is up to date (${manifest.operations.length} operations).`);
} else {
  await writeFile(target, text);
  console.log(`Wrote ${target}: ${manifest.operations.length} operations.`);
}
