import { randomUUID } from 'node:crypto';
import type { MikroORM } from '@mikro-orm/postgresql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConsumerDefinition } from '../../platform/events/consumer.types.js';
import type { EventEnvelope, NewEvent } from '../../platform/events/envelope.js';
import { createLogger } from '../../platform/log.js';
import { migratedSubgraphDatabase } from '../../test/support/database.js';
import { storyMigrations } from './migrations/index.js';
import { projectionsConsumer, storyConsumer } from './story.consumer.js';
import { AuthorVoice, storyEntities } from './story.entities.js';

/** The consumers on a real PostgreSQL, without a transport: the runtime's transaction is mimicked. */
const logger = createLogger('silent');
let db: Awaited<ReturnType<typeof migratedSubgraphDatabase>>;
let orm: MikroORM;

beforeAll(async () => {
  db = await migratedSubgraphDatabase({ name: 'story', entities: storyEntities, migrations: storyMigrations }, logger);
  orm = db.orm;
});
afterAll(async () => {
  await db?.close();
});

const envelope = (type: string, userId: string, payload: unknown, at: Date): EventEnvelope => ({
  id: randomUUID(),
  type,
  serviceName: 'test',
  timestamp: at.toISOString(),
  version: 1,
  correlationId: null,
  causationId: null,
  userId,
  payload,
});

async function handle(consumer: ConsumerDefinition, event: EventEnvelope): Promise<NewEvent[]> {
  const emitted: NewEvent[] = [];
  await orm.em.fork().transactional((em) => consumer.handle(event, { em, event, emit: (e) => void emitted.push(e), log: logger, replaying: false }));
  return emitted;
}

describe("story's voice projection and a deleted account", () => {
  it('stores a voice, forgets it with the account, and a late voice.cloned does not bring it back', async () => {
    const userId = randomUUID();
    const cloned = envelope('voice.cloned', userId, { voiceId: 'voice-1' }, new Date(Date.now() - 60_000));
    await handle(projectionsConsumer, cloned);
    expect(await orm.em.fork().count(AuthorVoice, { userId })).toBe(1);

    const report = await handle(storyConsumer, envelope('user.deleted', userId, { userId }, new Date()));
    expect(report.map((e) => e.type)).toEqual(['user.erasure.completed']);
    expect(await orm.em.fork().count(AuthorVoice, { userId })).toBe(0);

    // Redelivered, and a newer one from a replica: neither stores the voice again.
    await handle(projectionsConsumer, cloned);
    await handle(projectionsConsumer, envelope('voice.cloned', userId, { voiceId: 'voice-2' }, new Date(Date.now() + 60_000)));
    expect(await orm.em.fork().count(AuthorVoice, { userId })).toBe(0);
  });

  it('still stores the voice of a user who is not deleted', async () => {
    const userId = randomUUID();
    await handle(projectionsConsumer, envelope('voice.cloned', userId, { voiceId: 'voice-3' }, new Date()));
    expect(await orm.em.fork().findOneOrFail(AuthorVoice, { userId })).toMatchObject({ voiceId: 'voice-3' });
  });

  it('leaves user.deleted to the erasure step (one delete, not two)', () => {
    expect(projectionsConsumer.types).not.toContain('user.deleted');
    expect(storyConsumer.types).toContain('user.deleted');
  });
});
