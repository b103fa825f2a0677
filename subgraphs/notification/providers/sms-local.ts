/**
 * The local adapter of the SMS port, for development and end-to-end tests: each message becomes
 * one JSON file in `outboxDir` instead of a text to a phone. Names sort in the order sent.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DeliveryError, type OutgoingSms, type SmsSender } from './channel.js';

export interface LocalSmsSenderOptions {
  outboxDir: string;
  /** Injected for tests; the time written into each file and its name. */
  now?: () => Date;
}

/** One file of the outbox. */
export interface LocalSms extends OutgoingSms {
  /** The providerMessageId the send returned. */
  id: string;
  /** ISO 8601. */
  sentAt: string;
}

export function createLocalSmsSender(options: LocalSmsSenderOptions): SmsSender {
  const { outboxDir, now = () => new Date() } = options;
  if (!outboxDir) throw new RangeError('createLocalSmsSender: outboxDir is required');
  let sequence = 0;

  return {
    name: 'local',
    async send(message, { signal }) {
      signal.throwIfAborted();
      const sentAt = now();
      const id = `local-${randomUUID()}`;
      const sms: LocalSms = { id, sentAt: sentAt.toISOString(), deliveryId: message.deliveryId, to: message.to, body: message.body, ...(message.statusCallbackUrl ? { statusCallbackUrl: message.statusCallbackUrl } : {}) };
      // The sequence keeps two sends in one millisecond in the order they were made.
      const name = `${sentAt.toISOString().replace(/[:.]/g, '-')}-${String(sequence++).padStart(6, '0')}-${id}.json`;
      try {
        await mkdir(outboxDir, { recursive: true });
        // Written aside, then renamed: whoever watches the folder never reads half a message.
        const partial = join(outboxDir, `.${name}.partial`);
        await writeFile(partial, `${JSON.stringify(sms, null, 2)}\n`, { signal });
        await rename(partial, join(outboxDir, name));
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        throw new DeliveryError('TRANSIENT', `Could not write the SMS to ${outboxDir}: ${error instanceof Error ? error.message : String(error)}`);
      }
      return { provider: 'local', providerMessageId: id };
    },
  };
}

/** The messages in `outboxDir`, oldest first (none when it does not exist yet). */
export async function readSmsOutbox(outboxDir: string): Promise<LocalSms[]> {
  let names: string[];
  try {
    names = await readdir(outboxDir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const files = names.filter((name) => name.endsWith('.json') && !name.startsWith('.')).sort();
  return Promise.all(files.map(async (name) => JSON.parse(await readFile(join(outboxDir, name), 'utf8')) as LocalSms));
}
