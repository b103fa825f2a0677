/**
 * What identity publishes (catalog: schema/events/catalog.json). Payloads carry ids and the
 * few facts consumers need; consumers never read identity's tables.
 */
export const USER_REGISTERED = 'user.registered';
export const USER_LOGIN = 'user.login';
export const USER_UPDATED = 'user.updated';
export const USER_OAUTH_LINKED = 'user.oauth.linked';
/**
 * The deletion saga (deletion.service.ts), as its steps speak it: user.deleted starts it,
 * user.erasure.requested asks again, and each step's subgraph reports user.erasure.completed
 * (consumed here) in the transaction of its erasure.
 */
export { USER_DELETED, USER_ERASURE_COMPLETED, USER_ERASURE_REQUESTED } from '../../platform/events/erasure.js';
/** The end of the saga, identity's own. */
export const USER_DELETION_COMPLETED = 'user.deletion.completed';

export type SignInMethod = 'local' | 'google' | 'facebook' | 'microsoft';

export interface UserRegistered {
  userId: string;
  email: string;
  displayName: string;
  locale: string;
  provider: SignInMethod;
}

export interface UserLogin {
  userId: string;
  provider: SignInMethod;
}

export interface UserUpdated {
  userId: string;
  /** Only the fields that changed, with their new values. */
  changes: { displayName?: string; avatarUrl?: string | null; locale?: string };
}

export interface UserOAuthLinked {
  userId: string;
  provider: Exclude<SignInMethod, 'local'>;
}

export interface UserDeleted {
  userId: string;
}

/** What the saga asks of its steps, and what they report (platform/events/erasure.ts). */
export type { UserErasureCompleted, UserErasureRequested } from '../../platform/events/erasure.js';

/** Every step reported: the account is gone for good. */
export interface UserDeletionCompleted {
  userId: string;
}
