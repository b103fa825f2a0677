import { randomUUID } from 'node:crypto';
import { LockMode, type EntityManager } from '@mikro-orm/postgresql';
import { userError } from '../../platform/errors.js';
import type { Role } from '../../platform/internal-auth.js';
import type { SubgraphContext } from '../../platform/subgraph/context.js';
import { RefreshToken, User } from './identity.entities.js';
import { refreshDecision } from './identity.rules.js';
import { hashRefreshToken, newRefreshToken, type AccessTokens } from './tokens.js';

export interface Session {
  accessToken: string;
  refreshToken: string;
  accessTokenExpiresAt: Date;
}

export const rolesOf = (user: Pick<User, 'role'>): Role[] => (user.role === 'ADMIN' ? ['USER', 'ADMIN'] : ['USER']);

const invalidRefreshToken = () =>
  userError('INVALID_REFRESH_TOKEN', 'The refresh token is invalid, expired or already used; sign in again', 'refreshToken');

/** Sessions: an access token plus a rotating refresh token whose family marks one sign-in. */
export class SessionService {
  constructor(
    private readonly tokens: AccessTokens,
    private readonly refreshTtlSeconds: number,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  /** Issues a session inside the caller's transaction (a new family unless one is given). */
  async issue(em: EntityManager, user: User, familyId: string = randomUUID()): Promise<Session> {
    const now = this.clock();
    const refresh = newRefreshToken();
    em.persist(
      em.create(RefreshToken, {
        id: randomUUID(),
        userId: user.id,
        familyId,
        tokenHash: refresh.hash,
        createdAt: now,
        expiresAt: new Date(now.getTime() + this.refreshTtlSeconds * 1000),
        rotatedAt: null,
        revokedAt: null,
      }),
    );
    const access = await this.tokens.issue(user.id, rolesOf(user), now);
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
      const user = await em.findOneOrFail(User, { id: row.userId });
      row.rotatedAt = now;
      return this.issue(em, user, row.familyId);
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

  private async revokeFamily(em: EntityManager, familyId: string, now: Date): Promise<void> {
    await em.nativeUpdate(RefreshToken, { familyId, revokedAt: null }, { revokedAt: now });
  }
}
