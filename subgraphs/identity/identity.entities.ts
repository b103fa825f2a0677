import { EntitySchema } from '@mikro-orm/postgresql';
import type { Role } from '../../platform/internal-auth.js';
import type { DeletionStatus, StepStatus } from './deletion.rules.js';
import type { ProviderName } from './providers/provider.js';

export interface User {
  id: string;
  /** Stored trimmed and lower-cased: uniqueness is case-insensitive by construction. */
  email: string;
  /** True once someone proved they own the address (today: a sign-in provider vouched for it). */
  emailVerified: boolean;
  /** Argon2id PHC string; null for accounts created through a sign-in provider. */
  passwordHash: string | null;
  displayName: string;
  avatarUrl: string | null;
  locale: string;
  /** Granted roles; ADMIN_EMAILS adds ADMIN at sign-in for verified addresses (rules.rolesOf). */
  role: Exclude<Role, 'GUEST' | 'SERVICE'>;
  createdAt: Date;
  updatedAt: Date;
  /**
   * Set by deleteAccount: from then on the account is treated as deleted (no sign-in, no
   * profile, null as an entity). The row itself goes once every subgraph has erased its data.
   */
  deletionRequestedAt: Date | null;
}

export const User = new EntitySchema<User>({
  name: 'User',
  tableName: 'user',
  properties: {
    id: { type: 'uuid', primary: true },
    email: { type: 'string', unique: true },
    emailVerified: { type: 'boolean', fieldName: 'email_verified' },
    passwordHash: { type: 'string', nullable: true, fieldName: 'password_hash' },
    displayName: { type: 'string', fieldName: 'display_name' },
    avatarUrl: { type: 'string', nullable: true, fieldName: 'avatar_url' },
    locale: { type: 'string' },
    role: { type: 'string' },
    createdAt: { type: 'Date', fieldName: 'created_at' },
    updatedAt: { type: 'Date', fieldName: 'updated_at' },
    deletionRequestedAt: { type: 'Date', nullable: true, fieldName: 'deletion_requested_at' },
  },
});

export interface ProviderLink {
  id: string;
  userId: string;
  provider: ProviderName;
  /** The provider's stable account id (`sub`, or Facebook's user id). */
  subject: string;
  linkedAt: Date;
}

export const ProviderLink = new EntitySchema<ProviderLink>({
  name: 'ProviderLink',
  tableName: 'provider_link',
  properties: {
    id: { type: 'uuid', primary: true },
    userId: { type: 'uuid', fieldName: 'user_id' },
    provider: { type: 'string' },
    subject: { type: 'string' },
    linkedAt: { type: 'Date', fieldName: 'linked_at' },
  },
});

/**
 * One row per refresh token ever issued. Only a SHA-256 of the token is kept: the tokens are
 * 256 random bits, so a fast hash is enough and a database leak yields no usable token.
 * Tokens of one sign-in share a family; reuse of a rotated token revokes the whole family.
 */
export interface RefreshToken {
  id: string;
  userId: string;
  familyId: string;
  tokenHash: string;
  createdAt: Date;
  expiresAt: Date;
  rotatedAt: Date | null;
  revokedAt: Date | null;
}

export const RefreshToken = new EntitySchema<RefreshToken>({
  name: 'RefreshToken',
  tableName: 'refresh_token',
  properties: {
    id: { type: 'uuid', primary: true },
    userId: { type: 'uuid', fieldName: 'user_id' },
    familyId: { type: 'uuid', fieldName: 'family_id' },
    tokenHash: { type: 'string', unique: true, fieldName: 'token_hash' },
    createdAt: { type: 'Date', fieldName: 'created_at' },
    expiresAt: { type: 'Date', fieldName: 'expires_at' },
    rotatedAt: { type: 'Date', nullable: true, fieldName: 'rotated_at' },
    revokedAt: { type: 'Date', nullable: true, fieldName: 'revoked_at' },
  },
});

/** The asymmetric key access tokens are signed with; generated on first start. */
export interface SigningKey {
  kid: string;
  alg: string;
  privateJwk: Record<string, unknown>;
  publicJwk: Record<string, unknown>;
  createdAt: Date;
}

export const SigningKey = new EntitySchema<SigningKey>({
  name: 'SigningKey',
  tableName: 'signing_key',
  properties: {
    kid: { type: 'string', primary: true },
    alg: { type: 'string' },
    privateJwk: { type: 'json', fieldName: 'private_jwk' },
    publicJwk: { type: 'json', fieldName: 'public_jwk' },
    createdAt: { type: 'Date', fieldName: 'created_at' },
  },
});

/**
 * The deletion saga of one account (deletion.service.ts). Kept after it completes, as the
 * record that the account was erased; it holds nothing but the id.
 */
export interface UserDeletion {
  userId: string;
  status: DeletionStatus;
  requestedAt: Date;
  completedAt: Date | null;
  /** The deleteAccount request's: retries and the final event carry it, so the saga reads as one story in the event log. */
  correlationId: string | null;
}

export const UserDeletion = new EntitySchema<UserDeletion>({
  name: 'UserDeletion',
  tableName: 'user_deletion',
  properties: {
    userId: { type: 'uuid', primary: true, fieldName: 'user_id' },
    status: { type: 'string' },
    requestedAt: { type: 'Date', fieldName: 'requested_at' },
    completedAt: { type: 'Date', nullable: true, fieldName: 'completed_at' },
    correlationId: { type: 'string', nullable: true, fieldName: 'correlation_id' },
  },
});

/** One subgraph's part of a deletion: asked (user.deleted, then user.erasure.requested) until it reports. */
export interface UserDeletionStep {
  userId: string;
  service: string;
  status: StepStatus;
  /** Times the subgraph was asked, user.deleted being the first. */
  attempts: number;
  /** When it was last asked. */
  requestedAt: Date;
  doneAt: Date | null;
}

export const UserDeletionStep = new EntitySchema<UserDeletionStep>({
  name: 'UserDeletionStep',
  tableName: 'user_deletion_step',
  properties: {
    userId: { type: 'uuid', primary: true, fieldName: 'user_id' },
    service: { type: 'string', primary: true },
    status: { type: 'string' },
    attempts: { type: 'integer' },
    requestedAt: { type: 'Date', fieldName: 'requested_at' },
    doneAt: { type: 'Date', nullable: true, fieldName: 'done_at' },
  },
});

export const identityEntities = [User, ProviderLink, RefreshToken, SigningKey, UserDeletion, UserDeletionStep];
