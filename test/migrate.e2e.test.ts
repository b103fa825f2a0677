import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from './support/database.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
let db: Awaited<ReturnType<typeof createTestDatabase>>;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describe('npm run migrate', () => {
  it('applies each subgraph\'s migrations into its own schema, once', { timeout: 60_000 }, async () => {
    const env = { ...process.env, DATABASE_URL: db.url, LOG_LEVEL: 'info' };
    const first = await run('npm', ['run', '--silent', 'migrate'], { cwd: ROOT, env });
    expect(first.stdout).toContain('"subgraph":"identity","applied":["Migration20261126000000_identity","Migration20261128000000_user_deletion"]');
    const second = await run('npm', ['run', '--silent', 'migrate'], { cwd: ROOT, env });
    expect(second.stdout).toContain('"subgraph":"identity","applied":[],"msg":"schema up to date"');
  });

  it('fails at start naming a bad setting', async () => {
    const failure = await run('npm', ['run', '--silent', 'migrate'], { cwd: ROOT, env: { ...process.env, DATABASE_URL: 'mysql://nope' } }).catch((e) => e);
    expect(failure.code).toBe(1);
    expect(failure.stderr).toContain('DATABASE_URL: must be a postgres:// URL');
  });
});
