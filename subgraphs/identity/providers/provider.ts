import { userError } from '../../../platform/errors.js';

/** Sign-in providers the identity subgraph can verify (a port; one adapter per file, STYLE 1). */
export type ProviderName = 'GOOGLE' | 'FACEBOOK' | 'MICROSOFT';

/** Who the provider says the caller is, after the credential was verified. */
export interface ProviderIdentity {
  provider: ProviderName;
  /** The provider's stable user id (`sub` for OIDC, the app-scoped user id for Facebook). */
  subject: string;
  email: string | null;
  /** True only when the provider vouches for the address; callers must not link accounts on an unverified email. */
  emailVerified: boolean;
  name: string | null;
}

/** What the client got from the provider's SDK: OIDC providers send an idToken, Facebook an accessToken. */
export interface ProviderCredentials {
  idToken?: string | null;
  accessToken?: string | null;
}

export interface ProviderVerifier {
  /**
   * Resolves the identity, or rejects with a user DomainError INVALID_PROVIDER_TOKEN when the
   * credential is bad; a plain Error means the provider could not be asked (internal error).
   */
  verify(credentials: ProviderCredentials): Promise<ProviderIdentity>;
}

/** The one user-facing failure every verifier reports, whatever the reason (no oracle for attackers). */
export const invalidProviderToken = (message: string, field: 'idToken' | 'accessToken') =>
  userError('INVALID_PROVIDER_TOKEN', message, field);
