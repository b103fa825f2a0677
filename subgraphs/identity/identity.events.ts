/**
 * What identity publishes (catalog: schema/events/catalog.json). Payloads carry ids and the
 * few facts consumers need; consumers never read identity's tables.
 */
export const USER_REGISTERED = 'user.registered';
export const USER_LOGIN = 'user.login';
export const USER_UPDATED = 'user.updated';
export const USER_OAUTH_LINKED = 'user.oauth.linked';
export const USER_DELETED = 'user.deleted';

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
