import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { migratedSubgraphDatabase } from '../../test/support/database.js';
import { DomainError } from '../../platform/errors.js';
import type { EventEnvelope } from '../../platform/events/envelope.js';
import { createLogger } from '../../platform/log.js';
import { createSubgraphContext, type SubgraphContext } from '../../platform/subgraph/context.js';
import { AccountService } from './accounts.service.js';
import { identityEntities, ProviderLink, User } from './identity.entities.js';
import { identityMigrations } from './migrations/index.js';
import { hashPassword } from './passwords.js';
import type { ProviderIdentity } from './providers/index.js';
import { ProviderSignInService } from './provider-signin.service.js';
import { SessionService } from './sessions.service.js';
import type { AccessTokens } from './tokens.js';

/**
 * Sign-in, profile and linking racing deleteAccount on a real PostgreSQL. The order is forced:
 * a third connection holds the account's row while deleteAccount and then the racing call queue
 * behind it, so the deletion commits between the racing call's first check (outside its
 * transaction) and its writes.
 */
const logger = createLogger('silent');
const PASSWORD = 'correct horse battery staple';

let db: Awaited<ReturnType<typeof migratedSubgraphDatabase>>;
let passwordHash: string;
const tokens = { issue: async (userId: string, _roles: unknown, now: Date) => ({ token: `access-${userId}`, expiresAt: new Date(now.getTime() + 60_000) }) };
const sessions = new SessionService(tokens as unknown as AccessTokens, { refreshTtlSeconds: 3600, adminEmails: [] });
const accounts = new AccountService(sessions);
const google = (subject: string, email: string | null = null): ProviderIdentity => ({ provider: 'GOOGLE', subject, email, emailVerified: true, name: null });
let nextIdentity: ProviderIdentity;
const providers = new ProviderSignInService({ GOOGLE: { verify: async () => nextIdentity } }, accounts);

beforeAll(async () => {
  db = await migratedSubgraphDatabase({ name: 'identity', entities: identityEntities, migrations: identityMigrations }, logger);
  passwordHash = await hashPassword(PASSWORD);
});
afterAll(async () => {
  await db?.close();
});

const sql = <T = Record<string, any>>(query: string, params: unknown[] = []) => db.orm.em.fork().getConnection().execute<T[]>(query, params);

const contextOf = (userId: string | null): SubgraphContext =>
  createSubgraphContext({ serviceName: 'identity', em: db.orm.em.fork(), log: logger, caller: { userId, roles: userId ? ['USER'] : [] }, correlationId: randomUUID(), onEventsCommitted: () => {} });

/** A live account with a password, an unverified address and (optionally) a Google link; no session yet. */
async function account(link?: string): Promise<User> {
  const id = randomUUID();
  const now = new Date();
  const user = { id, email: `${id}@example.com`, emailVerified: false, passwordHash, displayName: 'Soon gone', avatarUrl: null, locale: 'en', role: 'USER' as const, createdAt: now, updatedAt: now, deletionRequestedAt: null };
  await db.orm.em.fork().transactional(async (em) => {
    em.persist(em.create(User, user));
    if (link) em.persist(em.create(ProviderLink, { id: randomUUID(), userId: id, provider: 'GOOGLE', subject: link, linkedAt: now }));
  });
  return user;
}

/** Sessions waiting on a lock in this test's database. */
const waiting = async () =>
  (await sql<{ n: number }>(`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`))[0]!.n;

/**
 * Holds the user's row, lets deleteAccount queue for it, then starts `race` and lets it queue
 * behind; releasing the row lets the deletion commit first. Returns how `race` ended.
 */
async function deletedMeanwhile(userId: string, race: () => Promise<unknown>): Promise<unknown> {
  const holder = new pg.Client({ connectionString: db.url });
  await holder.connect();
  try {
    await holder.query('begin');
    await holder.query(`select 1 from identity."user" where id = $1 for update`, [userId]);
    const deleting = accounts.deleteAccount(contextOf(userId));
    await vi.waitFor(async () => expect(await waiting()).toBe(1), { timeout: 5_000, interval: 10 });
    const racing = race().then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    );
    await vi.waitFor(async () => expect(await waiting()).toBe(2), { timeout: 5_000, interval: 10 });
    await holder.query('rollback');
    await deleting;
    return await racing;
  } finally {
    await holder.end();
  }
}

const outbox = (userId: string) =>
  sql<{ envelope: EventEnvelope }>(`select envelope from identity.outbox where envelope->>'userId' = ? order by created_at, id`, [userId]).then((rows) => rows.map((r) => r.envelope.type));
const sessionsOf = async (userId: string) => (await sql<{ n: number }>(`select count(*)::int as n from identity.refresh_token where user_id = ?`, [userId]))[0]!.n;
const codeOf = (outcome: unknown) => {
  const error = (outcome as { error?: unknown }).error;
  expect(error).toBeInstanceOf(DomainError);
  return (error as DomainError).code;
};

describe('an account deleted while it is being used', () => {
  it('logIn checked the password before the deletion: INVALID_CREDENTIALS, no session, no user.login', async () => {
    const user = await account();
    const outcome = await deletedMeanwhile(user.id, () => accounts.logIn(contextOf(null), { email: user.email, password: PASSWORD }));
    expect(codeOf(outcome)).toBe('INVALID_CREDENTIALS');
    expect(await sessionsOf(user.id)).toBe(0);
    expect(await outbox(user.id)).toEqual(['user.deleted']);
  });

  it('signInWithProvider found the link before the deletion: ACCOUNT_BEING_DELETED, no session, no user.login', async () => {
    const user = await account(`g-${randomUUID()}`);
    const [link] = await sql<{ subject: string }>(`select subject from identity.provider_link where user_id = ?`, [user.id]);
    nextIdentity = google(link!.subject);
    const outcome = await deletedMeanwhile(user.id, () => providers.signIn(contextOf(null), { provider: 'GOOGLE', idToken: 'x' }));
    expect(codeOf(outcome)).toBe('ACCOUNT_BEING_DELETED');
    expect(await sessionsOf(user.id)).toBe(0);
    expect(await outbox(user.id)).toEqual(['user.deleted']);
  });

  it('updateProfile checked the account before the deletion: UNAUTHENTICATED, nothing written, no user.updated', async () => {
    const user = await account();
    const outcome = await deletedMeanwhile(user.id, () => accounts.updateProfile(contextOf(user.id), { displayName: 'Renamed' }));
    expect(codeOf(outcome)).toBe('UNAUTHENTICATED');
    expect((await sql(`select display_name from identity."user" where id = ?`, [user.id]))[0]).toEqual({ display_name: 'Soon gone' });
    expect(await outbox(user.id)).toEqual(['user.deleted']);
  });

  it('linkProvider asked the provider before the deletion: UNAUTHENTICATED, no link, no user.oauth.linked', async () => {
    const user = await account();
    nextIdentity = google(`g-${randomUUID()}`, user.email);
    const outcome = await deletedMeanwhile(user.id, () => providers.link(contextOf(user.id), { provider: 'GOOGLE', idToken: 'x' }));
    expect(codeOf(outcome)).toBe('UNAUTHENTICATED');
    expect(await sql(`select 1 from identity.provider_link where user_id = ?`, [user.id])).toEqual([]);
    expect((await sql(`select email_verified from identity."user" where id = ?`, [user.id]))[0]).toEqual({ email_verified: false });
    expect(await outbox(user.id)).toEqual(['user.deleted']);
  });

  it('a sign-in whose account is deleted for good meanwhile answers its coded error, not a foreign-key failure', async () => {
    const user = await account(`g-${randomUUID()}`);
    const [link] = await sql<{ subject: string }>(`select subject from identity.provider_link where user_id = ?`, [user.id]);
    nextIdentity = google(link!.subject);
    // The saga's last report, as identity's consumer commits it: the row goes (links and tokens with it).
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query('begin');
      await holder.query(`update identity."user" set deletion_requested_at = now() where id = $1`, [user.id]);
      const racing = providers.signIn(contextOf(null), { provider: 'GOOGLE', idToken: 'x' }).then(
        (value) => ({ value }),
        (error: unknown) => ({ error }),
      );
      await vi.waitFor(async () => expect(await waiting()).toBe(1), { timeout: 5_000, interval: 10 });
      await holder.query(`delete from identity."user" where id = $1`, [user.id]);
      await holder.query('commit');
      expect(codeOf(await racing)).toBe('ACCOUNT_BEING_DELETED');
    } finally {
      await holder.end();
    }
    expect(await sessionsOf(user.id)).toBe(0);
    expect(await outbox(user.id)).toEqual([]);
  });

  it('a sign-in that takes the row first completes before the deletion, and its session is refused afterwards', async () => {
    // The other order, for contrast: the deletion waits for the sign-in, so user.login precedes user.deleted.
    const user = await account();
    const session = await accounts.logIn(contextOf(null), { email: user.email, password: PASSWORD });
    expect(session.user.id).toBe(user.id);
    await accounts.deleteAccount(contextOf(user.id));
    expect(await outbox(user.id)).toEqual(['user.login', 'user.deleted']);
    await expect(sessions.refresh(contextOf(null), session.session.refreshToken)).rejects.toMatchObject({ code: 'INVALID_REFRESH_TOKEN' });
  });
});
