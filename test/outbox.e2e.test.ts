import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createEnvelope } from '../platform/events/envelope.js';
import { ANONYMOUS } from '../platform/internal-auth.js';
import { createLogger } from '../platform/log.js';
import { createSubgraphContext } from '../platform/subgraph/context.js';
import { clientOperation } from './support/clients.js';
import { captureEvents } from './support/capture.js';
import { startTestStack, type TestStack } from './support/stack.js';

/** The transactional outbox: events travel only with committed state, and none is lost while the relay is down. */
const REGISTER = clientOperation('Register');
const register = (stack: TestStack, email: string) =>
  stack.gql(REGISTER, { input: { email, password: 'long enough password', displayName: 'Outbox' } });
const identity = (stack: TestStack) => stack.app.subgraphs.find((s) => s.name === 'identity')!;

describe('an outbox whose relay is down at commit time', () => {
  let stack: TestStack;
  let db: pg.Client;

  beforeAll(async () => {
    stack = await startTestStack({ relay: false, env: { OUTBOX_SWEEP_MS: '100' } });
    db = new pg.Client({ connectionString: stack.databaseUrl });
    await db.connect();
  });
  afterAll(async () => {
    await db?.end();
    await stack?.close();
  });

  it('keeps the committed event and delivers it once the relay starts', async () => {
    const events = await captureEvents(stack.transport, ['user.registered']);
    const userId = (await register(stack, 'late@example.com')).data.register.user.id;
    // Committed with the user, waiting unpublished.
    const { rows } = await db.query(`select published_at from identity.outbox where envelope->>'userId' = $1`, [userId]);
    expect(rows).toEqual([{ published_at: null }]);

    identity(stack).relay.start();
    const event = await events.waitFor((e) => e.userId === userId);
    expect(event.payload.email).toBe('late@example.com');
    // The relay marks the row once JetStream has acknowledged it (its commit may trail the delivery).
    await vi.waitFor(async () => {
      const after = await db.query(`select published_at from identity.outbox where envelope->>'userId' = $1`, [userId]);
      expect(after.rows[0].published_at).toBeInstanceOf(Date);
    });
    await events.stop();
  });

  it('publishes nothing for a rolled-back transaction', async () => {
    identity(stack).relay.start(); // idempotent: this test does not rely on the one above
    const events = await captureEvents(stack.transport, ['audit.probe']);
    const ctx = () =>
      createSubgraphContext({
        serviceName: 'identity',
        em: identity(stack).orm.em.fork(),
        log: createLogger('silent'),
        caller: ANONYMOUS,
        correlationId: randomUUID(),
        onEventsCommitted: () => identity(stack).relay.notify(),
      });
    const doomed = ctx().transaction(async ({ emit }) => {
      emit({ type: 'audit.probe', payload: { kind: 'rolled-back' } });
      throw new Error('the state change failed');
    });
    await expect(doomed).rejects.toThrow('the state change failed');
    await ctx().transaction(async ({ emit }) => emit({ type: 'audit.probe', payload: { kind: 'committed' } }));

    // The stream is ordered: once the later, committed event has arrived, the earlier one would have too.
    await events.waitFor((e) => e.payload.kind === 'committed');
    expect(events.received.map((e) => e.payload.kind)).toEqual(['committed']);
    const { rows } = await db.query(`select envelope->'payload'->>'kind' as kind from identity.outbox where type = 'audit.probe'`);
    expect(rows).toEqual([{ kind: 'committed' }]);
    await events.stop();
  });

  it('sweeps up rows that no commit announced (a process that died before notifying)', async () => {
    identity(stack).relay.start();
    const events = await captureEvents(stack.transport, ['audit.orphan']);
    const orphan = createEnvelope({ type: 'audit.orphan', payload: { n: 1 } }, { serviceName: 'identity' });
    // Written behind the relay's back: only the interval sweep can find it.
    await db.query(`insert into identity.outbox (id, type, envelope, created_at) values ($1, $2, $3, now())`, [orphan.id, orphan.type, orphan]);
    expect((await events.waitFor((e) => e.id === orphan.id)).payload).toEqual({ n: 1 });
    await events.stop();
  });
});

describe('a running relay', () => {
  let stack: TestStack;

  beforeAll(async () => {
    // A sweep far longer than the test: only the nudge after commit can publish in time.
    stack = await startTestStack({ env: { OUTBOX_SWEEP_MS: '600000' } });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('publishes right after the commit, without waiting for the sweep', async () => {
    const events = await captureEvents(stack.transport, ['user.registered']);
    const userId = (await register(stack, 'prompt@example.com')).data.register.user.id;
    await events.waitFor((e) => e.userId === userId, 5_000);
    await events.stop();
  });
});
