import { availableParallelism } from 'node:os';
import { hash, verify } from '@node-rs/argon2';

/**
 * Argon2id (memory-hard) with OWASP's 2023 minimum: 19 MiB, 2 passes, 1 lane. The parameters
 * are stored in each PHC string, so raising them later still verifies old hashes.
 */
const OPTIONS = { memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

/**
 * Hashing runs on a small thread pool that other work shares (libuv's: 4 threads unless
 * UV_THREADPOOL_SIZE says otherwise; token signing, DNS look-ups and file I/O use it too).
 * Each unauthenticated register or logIn costs one hash, so hashes leave at least one thread
 * (and one core) free and the rest queue: a burst of sign-ins slows sign-ins, not everything else.
 */
const POOL = Number(process.env.UV_THREADPOOL_SIZE) || 4;
const MAX_CONCURRENT = Math.max(1, Math.min(POOL, availableParallelism()) - 1);
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
/** Made at start-up, so the first unknown-email sign-in costs one hash like every other. */
export function prepareDecoy(): Promise<string> {
  decoy ??= hashPassword(crypto.randomUUID());
  return decoy;
}

export async function verifyDecoy(password: string): Promise<false> {
  await verifyPassword(await prepareDecoy(), password);
  return false;
}
