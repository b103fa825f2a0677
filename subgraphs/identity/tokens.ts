import { createHash, randomBytes } from 'node:crypto';
import type { MikroORM } from '@mikro-orm/postgresql';
import { SignJWT, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import type { Role } from '../../platform/internal-auth.js';
import { guestScope } from '../../platform/jwt.js';
import { SigningKey } from './identity.entities.js';

const ALG = 'ES256';

export interface AccessTokenSettings {
  issuer: string;
  audience: string;
  ttlSeconds: number;
  /** Lifetime of a guest session's token (GUEST_SESSION_TTL_SECONDS). */
  guestTtlSeconds: number;
}

export interface IssuedAccessToken {
  token: string;
  expiresAt: Date;
}

/**
 * The key identity signs access tokens with. It is generated on the first start and kept in
 * identity's own table, so restarts and replicas sign with the same key and the gateway's
 * cached JWKS stays valid. Several processes starting at once agree through an advisory lock.
 */
export class AccessTokens {
  private constructor(
    private readonly key: Awaited<ReturnType<typeof importJWK>>,
    private readonly kid: string,
    private readonly publicJwks: { keys: JWK[] },
    private readonly settings: AccessTokenSettings,
  ) {}

  static async load(orm: MikroORM, settings: AccessTokenSettings): Promise<AccessTokens> {
    const rows = await orm.em.fork().transactional(async (em) => {
      await em.getConnection().execute(`select pg_advisory_xact_lock(hashtext('identity.signing_key'))`, [], 'all', em.getTransactionContext());
      let keys = await em.find(SigningKey, {}, { orderBy: { createdAt: 'desc' } });
      if (!keys.length) {
        const { privateKey, publicKey } = await generateKeyPair(ALG, { extractable: true });
        const kid = randomBytes(12).toString('base64url');
        const key = em.create(SigningKey, {
          kid,
          alg: ALG,
          privateJwk: { ...(await exportJWK(privateKey)), kid, alg: ALG },
          publicJwk: { ...(await exportJWK(publicKey)), kid, alg: ALG, use: 'sig' },
          createdAt: new Date(),
        });
        em.persist(key);
        keys = [key];
      }
      return keys;
    });
    const current = rows[0]!;
    const key = await importJWK(current.privateJwk as JWK, ALG);
    // Every stored key stays published, so tokens signed before a rotation still verify.
    return new AccessTokens(key, current.kid, { keys: rows.map((r) => r.publicJwk as JWK) }, settings);
  }

  jwks(): { keys: JWK[] } {
    return this.publicJwks;
  }

  async issue(userId: string, roles: Role[], now = new Date()): Promise<IssuedAccessToken> {
    return this.sign(userId, { roles }, this.settings.ttlSeconds, now);
  }

  /**
   * A guest session's token: `sub` is the participant (not a user), the only role GUEST, and
   * `scope` the one template it is for. Same issuer, audience, typ and key as a user's token, so
   * the gateway verifies both alike and tells them apart by the role.
   */
  async issueGuest(participantId: string, templateId: string, now = new Date()): Promise<IssuedAccessToken> {
    return this.sign(participantId, { roles: ['GUEST'] satisfies Role[], scope: guestScope(templateId) }, this.settings.guestTtlSeconds, now);
  }

  private async sign(subject: string, claims: Record<string, unknown>, ttlSeconds: number, now: Date): Promise<IssuedAccessToken> {
    const issuedAt = Math.floor(now.getTime() / 1000);
    const expiresAt = new Date((issuedAt + ttlSeconds) * 1000);
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: ALG, kid: this.kid, typ: 'at+jwt' })
      .setSubject(subject)
      .setIssuer(this.settings.issuer)
      .setAudience(this.settings.audience)
      .setIssuedAt(issuedAt)
      .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
      .setJti(randomBytes(9).toString('base64url'))
      .sign(this.key);
    return { token, expiresAt };
  }
}

/** 256 random bits; only its hash is stored. */
export function newRefreshToken(): { token: string; hash: string } {
  const token = randomBytes(32).toString('base64url');
  return { token, hash: hashRefreshToken(token) };
}

export function hashRefreshToken(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}
