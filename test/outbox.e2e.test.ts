import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../platform/log.js';
import { ANONYMOUS } from '../platform/internal-auth.js';
import { createSubgraphContext } from '../platform/subgraph/context.js';
import { clientOperation } from './support/clients.js';
import { recordEvents } from './support/events.js';
import { startTestStack, type TestStack } from './support/stack.js';

/** The transactional outbox: events travel only with committed state, and none is lost while the relay is down. */
let stack: TestStack;
let db: pg.Client;

beforeAll(async () => {
  stack = await startTestStack({ relay: false });
  db = new pg.Client({ connectionString: stack.databaseUrl });
  await db.connect();
});

afterAll(async () => {
  await db?.end();
  await stack?.close();
});

const identity = () => stack.app.subgraphs.find((s) => s.name === 'identity')!;

describe('outbox and relay', () => {
  it('delivers an event committed while the relay was down once the relay starts', async () => {
    const events = await recordEvents(stack.transport, ['user.registered']);
    const res = await stack.gql(clientOperation('Register'), { input: { email: 'late@example.com', password: 'long enough password', displayName: 'Late' } });
    const userId = res.data.register.user.id;

    // Committed with the user, waiting unpublished: nothing has reached JetStream.
    const { rows } = await db.query(`select published_at from identity.outbox where envelope->>'userId' = $1`, [userId]);
    expect(rows).toEqual([{ published_at: null }]);
    expect(events.received).toEqual([]);

    identity().relay.start();
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
    const events = await recordEvents(stack.transport, ['audit.probe']);
    const ctx = () =>
      createSubgraphContext({
        serviceName: 'identity',
        em: identity().orm.em.fork(),
        log: createLogger('silent'),
        caller: ANONYMOUS,
        correlationId: randomUUID(),
        onEventsCommitted: () => identity().relay.notify(),
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
});
