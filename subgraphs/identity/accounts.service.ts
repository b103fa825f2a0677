import { randomUUID } from 'node:crypto';
import { LockMode, UniqueConstraintViolationException, type EntityManager } from '@mikro-orm/postgresql';
import { unauthenticated, userError, type DomainError } from '../../platform/errors.js';
import { requireUser, type SubgraphContext, type UnitOfWork } from '../../platform/subgraph/context.js';
import { beginDeletion } from './deletion.service.js';
import { User } from './identity.entities.js';
import * as events from './identity.events.js';
import * as rules from './identity.rules.js';
import { hashPassword, verifyDecoy, verifyPassword } from './passwords.js';
import type { Session, SessionService } from './sessions.service.js';

export interface RegisterInput {
  email: string;
  password: string;
  displayName: string;
  locale?: string | null;
}

export interface AuthResult {
  session: Session;
  user: User;
}

/** True when `error` is the unique index `constraint` refusing a row (names as in the migrations). */
export const violates = (error: unknown, constraint: string) =>
  error instanceof UniqueConstraintViolationException && (error as { constraint?: string }).constraint === constraint;

export const emailTaken = () => userError('EMAIL_TAKEN', 'An account with this email already exists', 'email');

/** The account was deleted, and its subgraphs are still erasing its data: the address is free once they are done. */
export const accountBeingDeleted = (field: string | null = 'email') =>
  userError('ACCOUNT_BEING_DELETED', 'This account is being deleted; its address can be used again once that is done', field);

/** Why `email` cannot have a new account, if it cannot: it has one, or had one whose deletion is under way. */
export async function emailUnavailable(em: EntityManager, email: string): Promise<DomainError | null> {
  const holder = await em.findOne(User, { email });
  if (!holder) return null;
  return holder.deletionRequestedAt ? accountBeingDeleted() : emailTaken();
}

/**
 * First thing in a transaction that signs in, or writes or emits for, an existing account: the
 * account's row, locked until the commit, or `refused()` when it is deleted or being deleted.
 * The check outside the transaction is not enough: deleteAccount's conditional update (and the
 * final delete of the row) wait for this lock, or this waits for them and finds the account
 * gone, so no session, user.login, user.updated or user.oauth.linked follows user.deleted, and
 * no new refresh token trips its deferred foreign key at commit (INTERNAL_SERVER_ERROR).
 * `update` for transactions that write the row: two shared locks both upgrading deadlock.
 */
export async function lockLiveUser(em: EntityManager, id: string, refused: () => DomainError, mode: 'share' | 'update' = 'share'): Promise<User> {
  const lockMode = mode === 'share' ? LockMode.PESSIMISTIC_READ : LockMode.PESSIMISTIC_WRITE;
  const user = await em.findOne(User, { id, deletionRequestedAt: null }, { lockMode });
  if (!user) throw refused();
  return user;
}

const invalidCredentials = () => userError('INVALID_CREDENTIALS', 'Email or password is wrong');
/** A valid token of a deleted account (or one being deleted): treat as signed out. */
export const accountGone = () => unauthenticated('This account no longer exists');

/** Accounts with a password: registration, sign-in, profile, deletion. */
export class AccountService {
  constructor(
    private readonly sessions: SessionService,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  async register(ctx: SubgraphContext, input: RegisterInput): Promise<AuthResult> {
    const email = rules.checkEmail(input.email);
    rules.checkPassword(input.password);
    const displayName = rules.checkDisplayName(input.displayName);
    const locale = rules.checkLocale(input.locale ?? 'en');
    // Cheap early answer; the unique index settles the race between two concurrent sign-ups.
    const unavailable = await emailUnavailable(ctx.em, email);
    if (unavailable) throw unavailable;
    const passwordHash = await hashPassword(input.password);
    return this.createUser(ctx, { email, emailVerified: false, passwordHash, displayName, locale }, 'local');
  }

  /** Creates the user, its first session and user.registered in one transaction. */
  async createUser(
    ctx: SubgraphContext,
    fields: Pick<User, 'email' | 'emailVerified' | 'passwordHash' | 'displayName' | 'locale'>,
    provider: events.SignInMethod,
    /** More work in the same transaction, after user.registered (the provider link). */
    also?: (tx: UnitOfWork, user: User) => void,
  ): Promise<AuthResult> {
    const now = this.clock();
    try {
      return await ctx.transaction(async (tx) => {
        const { em, emit } = tx;
        const user = em.create(User, {
          id: randomUUID(),
          ...fields,
          avatarUrl: null,
          role: 'USER',
          createdAt: now,
          updatedAt: now,
          deletionRequestedAt: null,
        });
        em.persist(user);
        const payload: events.UserRegistered = { userId: user.id, email: user.email, displayName: user.displayName, locale: user.locale, provider };
        emit({ type: events.USER_REGISTERED, userId: user.id, payload });
        also?.(tx, user);
        return { session: await this.sessions.issue(em, user), user };
      });
    } catch (error) {
      if (violates(error, 'user_email_key')) throw (await emailUnavailable(ctx.em, fields.email)) ?? emailTaken();
      throw error;
    }
  }

  async logIn(ctx: SubgraphContext, input: { email: string; password: string }): Promise<AuthResult> {
    // An account being deleted answers like one already gone, hash and all.
    const user = await ctx.em.findOne(User, { email: rules.normalizeEmail(input.email), deletionRequestedAt: null });
    const ok = user?.passwordHash ? await verifyPassword(user.passwordHash, input.password) : await verifyDecoy(input.password);
    if (!user || !ok) throw invalidCredentials();
    // Deleted while the hash was being checked: answers as above.
    return this.startSession(ctx, user.id, 'local', invalidCredentials);
  }

  /** A new sign-in of an existing user (user.login); `refused` when the account is deleted or being deleted. */
  async startSession(ctx: SubgraphContext, userId: string, provider: events.SignInMethod, refused: () => DomainError): Promise<AuthResult> {
    return ctx.transaction(async ({ em, emit }) => {
      const user = await lockLiveUser(em, userId, refused);
      const session = await this.sessions.issue(em, user);
      const payload: events.UserLogin = { userId: user.id, provider };
      emit({ type: events.USER_LOGIN, userId: user.id, payload });
      return { session, user };
    });
  }

  async me(ctx: SubgraphContext): Promise<User> {
    const user = await ctx.em.findOne(User, { id: requireUser(ctx), deletionRequestedAt: null });
    if (!user) throw accountGone();
    return user;
  }

  async updateProfile(ctx: SubgraphContext, input: rules.ProfileChanges): Promise<User> {
    const me = await this.me(ctx);
    const changes = rules.profileUpdate(me, input);
    if (!Object.keys(changes).length) return me;
    return ctx.transaction(async ({ em, emit }) => {
      const user = await lockLiveUser(em, me.id, accountGone, 'update');
      Object.assign(user, changes, { updatedAt: this.clock() });
      const payload: events.UserUpdated = { userId: user.id, changes };
      emit({ type: events.USER_UPDATED, payload });
      return user;
    });
  }

  /**
   * Begins the deletion saga (deletion.service.ts). From this commit on the account is treated
   * as deleted: no sign-in, its sessions revoked, null as an entity, its address refused with
   * ACCOUNT_BEING_DELETED. user.deleted asks every subgraph to erase its data; the row goes for
   * good when the last of them reports.
   */
  async deleteAccount(ctx: SubgraphContext): Promise<string> {
    const me = await this.me(ctx);
    await ctx.transaction(async ({ em, emit }) => {
      const now = this.clock();
      // Tokens before the user row: a refresh locks its token first too, so neither waits on the other's second lock.
      await this.sessions.revokeAll(em, me.id, now);
      // Conditional: of two deletions racing, one begins the saga; the other has nothing left to do.
      if (!(await em.nativeUpdate(User, { id: me.id, deletionRequestedAt: null }, { deletionRequestedAt: now, updatedAt: now }))) return;
      beginDeletion(em, me.id, ctx.correlationId, now);
      const payload: events.UserDeleted = { userId: me.id };
      emit({ type: events.USER_DELETED, payload });
    });
    return me.id;
  }
}
