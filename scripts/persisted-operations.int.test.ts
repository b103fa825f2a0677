import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GraphQLSchema } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MANIFEST_PATH, operationId, parseManifest, type PersistedQueryManifest } from '../gateway/persisted-operations.js';
import { CLIENTS_DIR, differencesOf, loadClientOperations, manifestOf, manifestText, problemsOf, supergraphApiSchema } from './client-operations.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * `npm run persisted -- ...args` as a child process (node with tsx, without npm's start-up);
 * resolves with the exit code instead of rejecting on 1. Each run builds the API schema for
 * seconds, so only the exit codes are tested this way; the rules are tested in-process.
 */
function persisted(...args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', 'scripts/persisted-operations.ts', ...args], { cwd: ROOT }, (error, stdout, stderr) => {
      const code = error ? error.code : 0;
      if (typeof code !== 'number') return reject(error); // spawn failure or killed by a signal
      resolve({ code, stdout, stderr });
    });
  });
}

let tmp: string;
let committed: string;
let manifest: PersistedQueryManifest;
let schema: GraphQLSchema;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'storyloom-persisted-'));
  committed = await readFile(MANIFEST_PATH, 'utf8');
  manifest = parseManifest(committed, MANIFEST_PATH);
  schema = supergraphApiSchema();
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

describe('npm run persisted', () => {
  it('--check accepts the committed gateway/persisted-operations.json', async () => {
    const run = await persisted('--check');
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`is up to date (${manifest.operations.length} operations)`);
  });

  it('--check exits 1 on a stale manifest, naming the operations, and leaves the file alone', async () => {
    const [first, second, ...rest] = manifest.operations;
    const body = `${first!.body}\n`;
    const stale: PersistedQueryManifest = {
      ...manifest,
      operations: [{ ...first!, body, id: operationId(body) }, ...rest, { id: operationId('{ retired }'), name: 'Retired', type: 'query', body: '{ retired }' }],
    };
    const file = join(tmp, 'stale.json');
    const text = manifestText(stale);
    await writeFile(file, text);
    const run = await persisted('--check', '--manifest', file);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      `${file} is stale: run \`npm run persisted\` and commit it.\n` +
        `  - ${first!.name}: changed\n  - ${second!.name}: not in the manifest\n  - Retired: no longer a client operation\n`,
    );
    expect(await readFile(file, 'utf8')).toBe(text);
  });
});

describe('the manifest of the client operations', () => {
  it('is the committed file, byte for byte', () => {
    const operations = loadClientOperations();
    expect(problemsOf(operations, schema)).toEqual([]);
    expect(manifestText(manifestOf(operations))).toBe(committed);
  });

  it('lists every client operation by the text the clients send, sorted by name', () => {
    const operations = loadClientOperations();
    expect(manifest.operations.map((o) => o.name)).toEqual(operations.map((o) => o.name).sort());
    for (const op of operations) {
      expect(manifest.operations.find((o) => o.name === op.name)).toEqual({ id: operationId(op.source), name: op.name, type: op.type, body: op.source });
    }
  });

  it('is the same whatever order the operations are read in', () => {
    const operations = loadClientOperations();
    expect(manifestOf([...operations].reverse())).toEqual(manifestOf(operations));
  });

  it('names no difference between equal manifests, and each operation that differs', () => {
    expect(differencesOf(manifest, manifest)).toEqual([]);
    const [first, ...rest] = manifest.operations;
    const retyped = { ...manifest, operations: [{ ...first!, type: 'subscription' as const }, ...rest] };
    expect(differencesOf(retyped, manifest)).toEqual([`${first!.name}: its type changed`]);
  });

  it('is refused when an operation does not validate against the API schema, naming it', async () => {
    const clients = join(tmp, 'clients');
    await cp(CLIENTS_DIR, clients, { recursive: true });
    const story = await readFile(join(clients, 'story.graphql'), 'utf8');
    const op = loadClientOperations(clients).find((o) => o.file === 'story.graphql' && o.type === 'query')!;
    // A field no type has, first in the operation's selection.
    const broken = story.replace(new RegExp(`(query ${op.name}\\b[^{]*\\{)`), '$1\n  noSuchField\n');
    expect(broken, 'the edit must apply, or this test proves nothing').not.toBe(story);
    await writeFile(join(clients, 'story.graphql'), broken);
    expect(problemsOf(loadClientOperations(clients), schema)).toEqual([`story.graphql ${op.name}: Cannot query field "noSuchField" on type "Query".`]);
  });

  it('is refused when two operations share a name', async () => {
    const clients = join(tmp, 'twins');
    await cp(CLIENTS_DIR, clients, { recursive: true });
    const op = loadClientOperations(clients).find((o) => o.file === 'story.graphql')!;
    await writeFile(join(clients, 'zz-copy.graphql'), op.source);
    expect(problemsOf(loadClientOperations(clients), schema)).toEqual([`zz-copy.graphql ${op.name}: the name is taken by an operation of story.graphql`]);
  });

  it('refuses to read an operation without a name', async () => {
    const clients = join(tmp, 'anonymous');
    await cp(CLIENTS_DIR, clients, { recursive: true });
    await writeFile(join(clients, 'zz-anonymous.graphql'), '\n{ __typename }\n');
    expect(() => loadClientOperations(clients)).toThrow(`${join(clients, 'zz-anonymous.graphql')}: an operation without a name (line 2)`);
  });
});
