import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { MikroORM } from '@mikro-orm/postgresql';
import { afterAll, beforeAll, expect, inject, it, vi } from 'vitest';
import { migrate } from '../platform/db/database.js';
import { EventConsumer } from '../platform/events/consumer.js';
import { createEnvelope } from '../platform/events/envelope.js';
import { JetStreamTransport } from '../platform/events/jetstream.js';
import { createLogger } from '../platform/log.js';
import { createTestDatabase } from './support/database.js';
import { openTallyDatabase, TALLY_SCHEMA, tallyDefinition } from './support/tally.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const logger = createLogger('silent');
const token = randomBytes(4).toString('hex');
const stream = `CRASH_${token}`;
const subjectPrefix = `k${token}.events.`;
const durable = `tally-${token}`;
const TOTAL = 1000;

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let orm: MikroORM;
let transport: JetStreamTransport;

beforeAll(async () => {
  db = await createTestDatabase();
  orm = await openTallyDatabase(db.url, logger);
  await migrate(orm);
  transport = await JetStreamTransport.connect({ url: inject('natsUrl'), stream, subjectPrefix, ackWaitMs: 1000 });
});
afterAll(async () => {
  await transport?.close();
  await orm?.close();
  await db?.drop();
});

const sql = <T>(query: string) => orm.em.fork().getConnection().execute<T[]>(query);
const counts = async () => {
  const [row] = await sql<{ total: number; most: number; keys: number; inbox: number }>(
    `select coalesce(sum("count"), 0)::int as total, coalesce(max("count"), 0)::int as most, count(*)::int as keys,
            (select count(*)::int from ${TALLY_SCHEMA}.inbox) as inbox
     from ${TALLY_SCHEMA}.tally`,
  );
  return row!;
};

it('a consumer killed mid-batch resumes elsewhere with nothing lost and nothing counted twice', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/tally-consumer.ts'], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: db.url, NATS_URL: inject('natsUrl'), STREAM: stream, SUBJECT_PREFIX: subjectPrefix, DURABLE: durable },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`consumer process exited early (${code})`)));
  });

  for (let i = 0; i < TOTAL; i++) await transport.publish(createEnvelope({ type: 'tally.add', payload: { key: `k${i}` } }, { serviceName: 'test' }));
  // Killed once some batches are committed and while more are in flight.
  await vi.waitFor(async () => expect((await counts()).total).toBeGreaterThanOrEqual(60), { timeout: 20_000, interval: 5 });
  child.kill('SIGKILL');
  expect(await exited).toBe('SIGKILL');
  const atKill = await counts();
  expect(atKill.total).toBeLessThan(TOTAL);

  // The same durable in another process: un-acknowledged events come back after ack_wait.
  const survivor = new EventConsumer({ definition: tallyDefinition(durable), orm, transport, logger, serviceName: 'tally', maxBatch: 50 });
  await survivor.start();
  try {
    await vi.waitFor(async () => expect((await counts()).total).toBe(TOTAL), { timeout: 30_000, interval: 50 });
    expect(await counts()).toEqual({ total: TOTAL, most: 1, keys: TOTAL, inbox: TOTAL });
  } finally {
    await survivor.stop();
  }
});
