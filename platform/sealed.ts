import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

/**
 * Secrets an event must carry to one consumer without showing them to everyone who reads the
 * stream or the event log (an invitation's link, say). Sealed with AES-256-GCM under a key
 * derived from the internal secret for one purpose, so a value sealed for one purpose does not
 * open for another, and any change to it is detected.
 */
const VERSION = 'v1';

const keyFor = (secret: string, purpose: string) => Buffer.from(hkdfSync('sha256', secret, 'storyloom-sealed', purpose, 32));

export function seal(secret: string, purpose: string, plaintext: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', keyFor(secret, purpose), iv);
  cipher.setAAD(Buffer.from(purpose, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return [VERSION, iv.toString('base64url'), Buffer.concat([body, cipher.getAuthTag()]).toString('base64url')].join('.');
}

export class SealError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SealError';
  }
}

/** The sealed text, or SealError when it was sealed for another purpose or secret, or altered. */
export function unseal(secret: string, purpose: string, sealed: string): string {
  const [version, iv, rest, extra] = sealed.split('.');
  if (version !== VERSION || !iv || !rest || extra !== undefined) throw new SealError('not a sealed value');
  const data = Buffer.from(rest, 'base64url');
  if (data.length < 16) throw new SealError('not a sealed value');
  const decipher = createDecipheriv('aes-256-gcm', keyFor(secret, purpose), Buffer.from(iv, 'base64url'));
  decipher.setAAD(Buffer.from(purpose, 'utf8'));
  decipher.setAuthTag(data.subarray(data.length - 16));
  try {
    return Buffer.concat([decipher.update(data.subarray(0, data.length - 16)), decipher.final()]).toString('utf8');
  } catch {
    throw new SealError('the sealed value does not open with this secret and purpose');
  }
}

/** Purposes in use, one per reader: values only the notification subgraph opens, to put in a message (an invite link, a code). */
export const FOR_NOTIFICATION = 'notification.message-variable';
