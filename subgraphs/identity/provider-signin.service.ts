import { randomUUID } from 'node:crypto';
import { DomainError, userError } from '../../platform/errors.js';
import type { SubgraphContext } from '../../platform/subgraph/context.js';
import { accountBeingDeleted, accountGone, emailUnavailable, lockLiveUser, violates, type AccountService, type AuthResult } from './accounts.service.js';
import { ProviderLink, User } from './identity.entities.js';
import * as events from './identity.events.js';
import { normalizeEmail } from './identity.rules.js';
import type { ProviderCredentials, ProviderIdentity, ProviderName, ProviderVerifier } from './providers/index.js';

export interface ProviderSignInInput extends ProviderCredentials {
  provider: ProviderName;
}

const methodOf = (provider: ProviderName) => provider.toLowerCase() as events.UserOAuthLinked['provider'];
/** The unique index on (provider, subject), as the migration names it. */
const LINK_KEY = 'provider_link_provider_subject_key';
const alreadyLinked = (message: string) => userError('PROVIDER_ALREADY_LINKED', message, 'provider');

/** Sign-in and account linking through Google, Microsoft and Facebook. */
export class ProviderSignInService {
  constructor(
    private readonly verifiers: Partial<Record<ProviderName, ProviderVerifier>>,
    private readonly accounts: AccountService,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  private async verify(input: ProviderSignInInput): Promise<ProviderIdentity> {
    const verifier = this.verifiers[input.provider];
    if (!verifier) throw userError('PROVIDER_NOT_CONFIGURED', `Sign-in with ${input.provider} is not enabled`, 'provider');
    return verifier.verify(input);
  }

  private newLink(userId: string, identity: ProviderIdentity): ProviderLink {
    return { id: randomUUID(), userId, provider: identity.provider, subject: identity.subject, linkedAt: this.clock() };
  }

  /** Signs in the linked user, or creates one on the first sign-in (user.registered + user.oauth.linked). */
  async signIn(ctx: SubgraphContext, input: ProviderSignInInput): Promise<AuthResult> {
    return this.signInVerified(ctx, await this.verify(input));
  }

  /**
   * `retried`: two first sign-ins of one provider account can race. The loser sees the email
   * taken (before or at its insert) or hits the link's unique index; looking once more finds
   * the winner's user and link, and signs in as it.
   */
  private async signInVerified(ctx: SubgraphContext, identity: ProviderIdentity, retried = false): Promise<AuthResult> {
    const link = await ctx.em.findOne(ProviderLink, { provider: identity.provider, subject: identity.subject });
    if (link) {
      // The link goes with the row once the deletion completes; until then it cannot sign in, nor
      // sign up again. startSession checks under the row's lock: the deletion may commit meanwhile.
      return this.accounts.startSession(ctx, link.userId, methodOf(identity.provider), () => accountBeingDeleted('provider'));
    }

    if (!identity.email || !identity.emailVerified) {
      throw userError('PROVIDER_EMAIL_UNVERIFIED', 'The provider did not vouch for an email address; register with email instead', 'provider');
    }
    const email = normalizeEmail(identity.email);
    const method = methodOf(identity.provider);
    const displayName = (identity.name?.trim() || email.split('@')[0]!).slice(0, 100);
    try {
      // Never attach a provider to an existing account on email alone: the owner must sign in and link it.
      const unavailable = await emailUnavailable(ctx.em, email);
      if (unavailable) throw unavailable;
      return await this.accounts.createUser(ctx, { email, emailVerified: true, passwordHash: null, displayName, locale: 'en' }, method, ({ em, emit }, user) => {
        em.persist(em.create(ProviderLink, this.newLink(user.id, identity)));
        const payload: events.UserOAuthLinked = { userId: user.id, provider: method };
        emit({ type: events.USER_OAUTH_LINKED, userId: user.id, payload });
      });
    } catch (error) {
      const mayHaveLostRace = violates(error, LINK_KEY) || (error instanceof DomainError && error.code === 'EMAIL_TAKEN');
      if (mayHaveLostRace && !retried) return this.signInVerified(ctx, identity, true);
      throw error;
    }
  }

  async link(ctx: SubgraphContext, input: ProviderSignInInput): Promise<User> {
    const caller = (await this.accounts.me(ctx)).id;
    const identity = await this.verify(input);
    try {
      return await ctx.transaction(async ({ em, emit }) => {
        // The provider was asked after the check in me(): the account may have been deleted since.
        const me = await lockLiveUser(em, caller, accountGone, 'update');
        const existing = await em.findOne(ProviderLink, { provider: identity.provider, subject: identity.subject });
        if (existing) {
          throw alreadyLinked(existing.userId === me.id ? 'This provider account is already linked to you' : 'This provider account is linked to another user');
        }
        if (await em.count(ProviderLink, { userId: me.id, provider: identity.provider })) {
          throw alreadyLinked(`Another ${identity.provider} account is already linked to you`);
        }
        em.persist(em.create(ProviderLink, this.newLink(me.id, identity)));
        // The provider vouching for the account's own address verifies it.
        if (identity.emailVerified && identity.email && normalizeEmail(identity.email) === me.email && !me.emailVerified) me.emailVerified = true;
        const payload: events.UserOAuthLinked = { userId: me.id, provider: methodOf(identity.provider) };
        emit({ type: events.USER_OAUTH_LINKED, payload });
        return me;
      });
    } catch (error) {
      // Two concurrent links of the same provider account: the unique index decides.
      if (violates(error, LINK_KEY) || violates(error, 'provider_link_user_id_provider_key')) throw alreadyLinked('This provider account is already linked');
      throw error;
    }
  }
}
