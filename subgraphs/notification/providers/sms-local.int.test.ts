import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeliveryError } from './channel.js';
import { createLocalSmsSender, readSmsOutbox } from './sms-local.js';

describe('local SMS sender', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sms-outbox-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));
  const signal = new AbortController().signal;

  it('writes each message to its own file in the outbox, in the order sent', async () => {
    const outboxDir = join(dir, 'ordered'); // made on the first send
    const sender = createLocalSmsSender({ outboxDir, now: () => new Date('2026-03-01T12:00:00.000Z') });
    expect(await readSmsOutbox(outboxDir)).toEqual([]);
    const first = { deliveryId: randomUUID(), to: '+14155550123', body: 'First', statusCallbackUrl: 'https://hooks.example.test/s' };
    const second = { deliveryId: randomUUID(), to: '+31612345678', body: 'Second' };
    const a = await sender.send(first, { signal });
    const b = await sender.send(second, { signal });

    expect(a).toEqual({ provider: 'local', providerMessageId: expect.stringMatching(/^local-/) });
    expect(b.providerMessageId).not.toBe(a.providerMessageId);
    expect(await readSmsOutbox(outboxDir)).toEqual([
      { id: a.providerMessageId, sentAt: '2026-03-01T12:00:00.000Z', ...first },
      { id: b.providerMessageId, sentAt: '2026-03-01T12:00:00.000Z', ...second },
    ]);
    // Nothing half-written is left behind.
    expect((await readdir(outboxDir)).filter((name) => name.startsWith('.'))).toEqual([]);
  });

  it('sends nothing once aborted', async () => {
    const outboxDir = join(dir, 'aborted');
    const reason = new Error('shutting down');
    await expect(createLocalSmsSender({ outboxDir }).send({ deliveryId: 'd', to: '+14155550123', body: 'x' }, { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    expect(await readSmsOutbox(outboxDir)).toEqual([]);
  });

  it('reports an outbox it cannot write as TRANSIENT', async () => {
    const blocked = join(dir, 'a-file');
    await writeFile(blocked, 'not a folder');
    const error = await createLocalSmsSender({ outboxDir: blocked }).send({ deliveryId: 'd', to: '+14155550123', body: 'x' }, { signal }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeliveryError);
    expect(error).toMatchObject({ reason: 'TRANSIENT', message: expect.stringContaining(blocked) });
  });
});
