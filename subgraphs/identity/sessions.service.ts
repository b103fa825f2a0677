import { randomUUID } from 'node:crypto';
import { LockMode, type EntityManager } from '@mikro-orm/postgresql';
import { userError } from '../../platform/errors.js';
import type { SubgraphContext } from '../../platform/subgraph/context.js';
import { RefreshToken, User } from './identity.entities.js';
import { refreshDecision, rolesOf } from './identity.rules.js';
import { hashRefreshToken, newRefreshToken, type AccessTokens } from './tokens.js';

export interface Session {
  accessToken: string;
  refreshToken: string;
  accessTokenExpiresAt: Date;
}

const invalidRefreshToken = () =>
  userError('INVALID_REFRESH_TOKEN', 'The refresh token is invalid, expired or already used; sign in again', 'refreshToken');

/** Sessions: an access token plus a rotating refresh token whose family marks one sign-in. */
export class SessionService {
  constructor(
    private readonly tokens: AccessTokens,
    private readonly settings: { refreshTtlSeconds: number; adminEmails: readonly string[] },
    private readonly clock: () => Date = () => new Date(),
  ) {}

  /**
   * Issues a session inside the caller's transaction. A new sign-in starts a family that lives
   * REFRESH_TOKEN_TTL_SECONDS; rotation keeps the family's end, so a session cannot be
   * stretched forever by refreshing.
   */
  async issue(em: EntityManager, user: User, family?: { id: string; expiresAt: Date }): Promise<Session> {
    const now = this.clock();
    const refresh = newRefreshToken();
    em.persist(
      em.create(RefreshToken, {
        id: randomUUID(),
        userId: user.id,
        familyId: family?.id ?? randomUUID(),
        tokenHash: refresh.hash,
        createdAt: now,
        expiresAt: family?.expiresAt ?? new Date(now.getTime() + this.settings.refreshTtlSeconds * 1000),
        rotatedAt: null,
        revokedAt: null,
      }),
    );
    const access = await this.tokens.issue(user.id, rolesOf(user, this.settings.adminEmails), now);
    return { accessToken: access.token, refreshToken: refresh.token, accessTokenExpiresAt: access.expiresAt };
  }

  async refresh(ctx: SubgraphContext, token: string): Promise<Session> {
    // The row lock serialises two refreshes of one token: the second sees it rotated (reuse).
    const outcome = await ctx.transaction(async ({ em }) => {
      const row = await em.findOne(RefreshToken, { tokenHash: hashRefreshToken(token) }, { lockMode: LockMode.PESSIMISTIC_WRITE });
      if (!row) return null;
      const now = this.clock();
      const decision = refreshDecision(row, now);
      if (decision === 'reuse') {
        // Commit the revocation, then answer with the error (throwing here would roll it back).
        await this.revokeFamily(em, row.familyId, now);
        ctx.log.warn({ familyId: row.familyId, userId: row.userId }, 'refresh token reused; session family revoked');
        return null;
      }
      if (decision !== 'rotate') return null;
      // deleteAccount revokes the account's tokens, but a refresh committed just before it made
      // one that update did not see: the account being deleted refuses it here.
      const user = await em.findOne(User, { id: row.userId, deletionRequestedAt: null });
      if (!user) return null;
      row.rotatedAt = now;
      return this.issue(em, user, { id: row.familyId, expiresAt: row.expiresAt });
    });
    if (!outcome) throw invalidRefreshToken();
    return outcome;
  }

  /** Ends the sign-in the token belongs to; unknown tokens are fine (logging out twice is not an error). */
  async logOut(ctx: SubgraphContext, token: string): Promise<void> {
    await ctx.transaction(async ({ em }) => {
      // Locked like refresh(): a refresh racing this log-out either finishes first (and its new
      // token is revoked with the family) or waits and then finds the token revoked.
      const row = await em.findOne(RefreshToken, { tokenHash: hashRefreshToken(token) }, { lockMode: LockMode.PESSIMISTIC_WRITE });
      if (row) await this.revokeFamily(em, row.familyId, this.clock());
    });
  }

  /** Ends every sign-in of the user (their account is being deleted), in the caller's transaction. */
  async revokeAll(em: EntityManager, userId: string, now: Date): Promise<void> {
    await em.nativeUpdate(RefreshToken, { userId, revokedAt: null }, { revokedAt: now });
  }

  private async revokeFamily(em: EntityManager, familyId: string, now: Date): Promise<void> {
    await em.nativeUpdate(RefreshToken, { familyId, revokedAt: null }, { revokedAt: now });
  }
}

/** Rows are kept a day past their end, for reuse detection and support; then they go. */
const REFRESH_TOKEN_GRACE_MS = 24 * 3600_000;

/** Deletes refresh tokens whose sign-in ended more than a day before `now`; returns how many. */
export function pruneRefreshTokens(em: EntityManager, now = new Date()): Promise<number> {
  return em.nativeDelete(RefreshToken, { expiresAt: { $lt: new Date(now.getTime() - REFRESH_TOKEN_GRACE_MS) } });
}
