import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SCHEMA = join(ROOT, 'schema');
const COMMITTED = join(SCHEMA, 'supergraph.graphql');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `npm run compose -- ...args`, as a child process; resolves with the exit code instead of rejecting on 1. */
function compose(...args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile('npx', ['tsx', 'scripts/compose.ts', ...args], { cwd: ROOT }, (error, stdout, stderr) => {
      const code = error ? error.code : 0;
      if (typeof code !== 'number') return reject(error); // spawn failure or killed by a signal
      resolve({ code, stdout, stderr });
    });
  });
}

let tmp: string;
let committed: string;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'storyloom-compose-'));
  committed = await readFile(COMMITTED, 'utf8');
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

describe('npm run compose', () => {
  it('--check accepts the committed schema/supergraph.graphql', async () => {
    const run = await compose('--check');
    expect(run.stderr).not.toContain('Composition failed');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('is up to date');
  });

  it('--check fails, naming the file, when the supergraph is stale, and leaves it alone', async () => {
    const stale = join(tmp, 'stale.graphql');
    await writeFile(stale, `${committed}\n# edited by hand\n`);
    const run = await compose('--check', '--supergraph', stale);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`${stale} is stale`);
    expect(await readFile(stale, 'utf8')).toBe(`${committed}\n# edited by hand\n`);
  });

  it('--check fails when the supergraph is missing, and does not create it', async () => {
    const missing = join(tmp, 'missing.graphql');
    const run = await compose('--check', '--supergraph', missing);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`${missing} is missing`);
    expect(existsSync(missing)).toBe(false);
  });

  it('writes exactly the committed supergraph', async () => {
    const target = join(tmp, 'written.graphql');
    const run = await compose('--supergraph', target);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`Wrote ${target}`);
    expect(await readFile(target, 'utf8')).toBe(committed);
  });

  it('fails with the composition error when a subgraph schema cannot compose', async () => {
    // Every subgraph schema is copied so the failure can only come from the one edit below.
    const schemaDir = join(tmp, 'schema');
    await mkdir(schemaDir);
    for (const file of await readdir(SCHEMA)) {
      if (file.endsWith('.graphql') && file !== 'supergraph.graphql') await copyFile(join(SCHEMA, file), join(schemaDir, file));
    }
    const identity = await readFile(join(schemaDir, 'identity.graphql'), 'utf8');
    const broken = identity.replace('type User @key(fields: "id")', 'type User @key(fields: "nope")');
    expect(broken, 'the edit must apply, or this test proves nothing').not.toBe(identity);
    await writeFile(join(schemaDir, 'identity.graphql'), broken);

    const run = await compose('--check', '--schema-dir', schemaDir);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^Composition failed/);
    expect(run.stderr).toContain('Cannot query field "nope" on type "User"');
  });
});
