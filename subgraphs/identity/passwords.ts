import { hash, verify } from '@node-rs/argon2';

/**
 * Argon2id (memory-hard) with OWASP's 2023 minimum: 19 MiB, 2 passes, 1 lane. The parameters
 * are stored in each PHC string, so raising them later still verifies old hashes.
 */
const OPTIONS = { memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

export function hashPassword(password: string): Promise<string> {
  return hash(password, OPTIONS);
}

export async function verifyPassword(phc: string, password: string): Promise<boolean> {
  try {
    return await verify(phc, password);
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
