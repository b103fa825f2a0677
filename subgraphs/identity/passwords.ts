import { availableParallelism } from 'node:os';
import { hash, verify } from '@node-rs/argon2';

/**
 * Argon2id (memory-hard) with OWASP's 2023 minimum: 19 MiB, 2 passes, 1 lane. The parameters
 * are stored in each PHC string, so raising them later still verifies old hashes.
 */
const OPTIONS = { memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

/**
 * Hashing runs on libuv's small thread pool, which DNS look-ups and file I/O share. Each
 * unauthenticated register or logIn costs one hash, so at most this many run at once and the
 * rest queue: a burst of sign-ins slows sign-ins, not everything else.
 */
const MAX_CONCURRENT = Math.max(1, availableParallelism() - 1);
let active = 0;
const waiting: (() => void)[] = [];

async function limited<T>(work: () => Promise<T>): Promise<T> {
  if (active >= MAX_CONCURRENT) await new Promise<void>((resolve) => waiting.push(resolve));
  active++;
  try {
    return await work();
  } finally {
    active--;
    waiting.shift()?.();
  }
}

export function hashPassword(password: string): Promise<string> {
  return limited(() => hash(password, OPTIONS));
}

export async function verifyPassword(phc: string, password: string): Promise<boolean> {
  try {
    return await limited(() => verify(phc, password));
  } catch {
    return false;
  }
}

/**
 * A hash of nothing anyone knows, verified when the email is unknown so that a wrong email
 * and a wrong password take the same time and answer the same INVALID_CREDENTIALS.
 */
let decoy: Promise<string> | null = null;
export async function verifyDecoy(password: string): Promise<false> {
  decoy ??= hashPassword(crypto.randomUUID());
  await verifyPassword(await decoy, password);
  return false;
}
