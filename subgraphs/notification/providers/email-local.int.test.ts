import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DeliveryError, type OutgoingEmail } from './channel.js';
import { createLocalEmailSender, readLocalMailbox } from './email-local.js';

const email = (overrides: Partial<OutgoingEmail> = {}): OutgoingEmail => ({
  deliveryId: randomUUID(),
  to: 'ann@example.org',
  subject: 'Your story has a new chapter',
  text: 'Bob wrote chapter 3.',
  html: '<p>Bob wrote chapter 3.</p>',
  ...overrides,
});

describe('the local email sender', () => {
  let root: string;
  const signal = new AbortController().signal;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'mailbox-'));
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  it('writes each message as a JSON file in the mailbox, creating it, and says it is local', async () => {
    const mailboxDir = join(root, 'mail', 'out');
    const logger = { info: vi.fn() };
    const sender = createLocalEmailSender({ mailboxDir, logger, from: 'Storyloom <hello@storyloom.test>', now: () => new Date('2026-03-01T10:00:00.000Z') });
    const first = email();
    const result = await sender.send(first, { signal });
    expect(sender.name).toBe('local');
    expect(result.provider).toBe('local');
    expect(result.providerMessageId).toMatch(/^[0-9a-f-]{36}$/);

    const [stored, ...rest] = await readLocalMailbox(mailboxDir);
    expect(rest).toEqual([]);
    expect(stored).toEqual({
      id: result.providerMessageId,
      deliveryId: first.deliveryId,
      headers: {
        From: 'Storyloom <hello@storyloom.test>',
        To: 'ann@example.org',
        Subject: 'Your story has a new chapter',
        Date: 'Sun, 01 Mar 2026 10:00:00 GMT',
        'Message-ID': `<${result.providerMessageId}@storyloom.local>`,
        'X-Delivery-Id': first.deliveryId,
      },
      text: 'Bob wrote chapter 3.',
      html: '<p>Bob wrote chapter 3.</p>',
    });
    expect(logger.info).toHaveBeenCalledWith(expect.objectContaining({ deliveryId: first.deliveryId, file: expect.stringContaining(mailboxDir) }), expect.any(String));
  });

  it('keeps messages in sending order, a text-only one with html null, and leaves no partial files', async () => {
    let clock = Date.parse('2026-03-01T10:00:00.000Z');
    const sender = createLocalEmailSender({ mailboxDir: root, now: () => new Date((clock += 1)) });
    const sent = [email({ subject: 'one' }), email({ subject: 'two', html: undefined }), email({ subject: 'three' })];
    for (const message of sent) await sender.send(message, { signal });
    const mailbox = await readLocalMailbox(root);
    expect(mailbox.map((m) => m.headers.Subject)).toEqual(['one', 'two', 'three']);
    expect(mailbox[1]!.html).toBeNull();
    expect((await readdir(root)).filter((name) => !name.endsWith('.json'))).toEqual([]);
  });

  it('reads an absent mailbox as empty', async () => {
    expect(await readLocalMailbox(join(root, 'never-written'))).toEqual([]);
  });

  it('fails TRANSIENT only when the disk does', async () => {
    const notADirectory = join(root, 'file');
    await writeFile(notADirectory, 'x');
    const error = await createLocalEmailSender({ mailboxDir: join(notADirectory, 'mail') }).send(email(), { signal }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeliveryError);
    expect(error).toMatchObject({ reason: 'TRANSIENT', message: expect.stringContaining('ENOTDIR') });
  });

  it('writes nothing once aborted', async () => {
    const controller = new AbortController();
    const reason = new Error('shutting down');
    controller.abort(reason);
    await expect(createLocalEmailSender({ mailboxDir: root }).send(email(), { signal: controller.signal })).rejects.toBe(reason);
    expect(await readLocalMailbox(root)).toEqual([]);
  });
});
