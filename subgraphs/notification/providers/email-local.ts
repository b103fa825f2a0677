/**
 * The offline email adapter: each message becomes one JSON file in a mailbox folder (headers,
 * text, html), so sign-up, password and notification flows work end to end without any key, and
 * a developer (or an end-to-end test) reads what would have been sent. It says so: provider
 * "local". It fails only when the disk does.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../../platform/log.js';
import { DeliveryError, type EmailSender, type OutgoingEmail } from './channel.js';

export interface LocalEmailSenderOptions {
  /** Created when missing. */
  mailboxDir: string;
  /** Default "Storyloom <noreply@storyloom.local>". */
  from?: string;
  logger?: Pick<Logger, 'info'>;
  /** For tests. */
  now?: () => Date;
}

/** One file in the mailbox. */
export interface LocalEmail {
  /** The providerMessageId the send returned. */
  id: string;
  deliveryId: string;
  headers: { From: string; To: string; Subject: string; Date: string; 'Message-ID': string; 'X-Delivery-Id': string };
  text: string;
  html: string | null;
}

const MAILBOX_FILE = /^\d{8}T\d{9}Z-[0-9a-f-]{36}\.json$/;

export function createLocalEmailSender(options: LocalEmailSenderOptions): EmailSender {
  const { mailboxDir, from = 'Storyloom <noreply@storyloom.local>', logger, now = () => new Date() } = options;
  if (!mailboxDir) throw new RangeError('createLocalEmailSender: mailboxDir is required');

  return {
    name: 'local',
    async send(message, { signal }) {
      signal.throwIfAborted();
      const id = randomUUID();
      const date = now();
      const email = localEmail(id, message, from, date);
      // Sorting the names sorts the mail by sending time.
      const file = join(mailboxDir, `${date.toISOString().replace(/[-:.]/g, '')}-${id}.json`);
      const partial = join(mailboxDir, `.${id}.partial`);
      try {
        await mkdir(mailboxDir, { recursive: true });
        // Written aside, then renamed: whoever watches the folder never reads half a message.
        await writeFile(partial, `${JSON.stringify(email, null, 2)}\n`, { flag: 'wx' });
        await rename(partial, file);
      } catch (error) {
        await rm(partial, { force: true }).catch(() => {});
        const code = (error as NodeJS.ErrnoException).code;
        // A full or failing disk may recover; another provider, if any, may send it meanwhile.
        throw new DeliveryError('TRANSIENT', `Could not write to the local mailbox ${mailboxDir}${code ? ` (${code})` : ''}: ${error instanceof Error ? error.message : String(error)}`);
      }
      logger?.info({ deliveryId: message.deliveryId, to: message.to, subject: message.subject, file }, 'email written to the local mailbox');
      return { provider: 'local', providerMessageId: id };
    },
  };
}

function localEmail(id: string, message: OutgoingEmail, from: string, date: Date): LocalEmail {
  return {
    id,
    deliveryId: message.deliveryId,
    headers: { From: from, To: message.to, Subject: message.subject, Date: date.toUTCString(), 'Message-ID': `<${id}@storyloom.local>`, 'X-Delivery-Id': message.deliveryId },
    text: message.text,
    html: message.html ?? null,
  };
}

/** The mailbox's messages, oldest first (an empty list when there is no mailbox yet). */
export async function readLocalMailbox(mailboxDir: string): Promise<LocalEmail[]> {
  let names: string[];
  try {
    names = await readdir(mailboxDir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const files = names.filter((name) => MAILBOX_FILE.test(name)).sort();
  return Promise.all(files.map(async (name) => JSON.parse(await readFile(join(mailboxDir, name), 'utf8')) as LocalEmail));
}
