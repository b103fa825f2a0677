import { mutationPayload } from '../../platform/errors.js';
import { DateTime } from '../../platform/graphql/scalars.js';
import type { SubgraphContext } from '../../platform/subgraph/context.js';
import type { Resolvers } from '../../platform/subgraph/server.js';
import type { AccountService, RegisterInput } from './accounts.service.js';
import { findDeletion } from './deletion.service.js';
import { ProviderLink, User } from './identity.entities.js';
import { checkGuestSessionRequest, rolesOf, type ProfileChanges } from './identity.rules.js';
import type { ProviderSignInInput, ProviderSignInService } from './provider-signin.service.js';
import type { SessionService } from './sessions.service.js';
import type { AccessTokens } from './tokens.js';

export interface IdentityServices {
  accounts: AccountService;
  sessions: SessionService;
  providers: ProviderSignInService;
  tokens: AccessTokens;
  adminEmails: readonly string[];
}

/** How an account being deleted appears meanwhile, to everyone: its id, no name, picture or address. */
const FORMER_USER = { displayName: 'Former user', avatarUrl: null, email: '', role: 'USER' } as const;

/**
 * Batches `User` lookups by id: one query per request level however many references come in.
 * An account being deleted resolves as a former user rather than null: other subgraphs still
 * hold references to it until their steps of the saga are done (a story stays in the feed until
 * story archives it), and `Story.author` and the like are non-null.
 */
const userById = (ctx: SubgraphContext) =>
  ctx.loader<string, User | null>('userById', async (ids) => {
    const users = await ctx.em.find(User, { id: { $in: [...ids] } });
    const byId = new Map(users.map((u) => [u.id, u.deletionRequestedAt ? { ...u, ...FORMER_USER } : u]));
    return ids.map((id) => byId.get(id) ?? null);
  });

const linksByUser = (ctx: SubgraphContext) =>
  ctx.loader<string, ProviderLink[]>('providerLinksByUser', async (ids) => {
    const links = await ctx.em.find(ProviderLink, { userId: { $in: [...ids] } }, { orderBy: { linkedAt: 'asc' } });
    return ids.map((id) => links.filter((l) => l.userId === id));
  });

/** Users who signed in within a request: their own payload may show their private fields. */
const signedInDuring = new WeakMap<SubgraphContext, Set<string>>();

/**
 * Private fields of a user are for that user and admins; everyone else (a story's readers,
 * say) sees the public profile and null here, not an error that would blank the whole author.
 */
const canSeePrivate = (user: User, ctx: SubgraphContext) =>
  !user.deletionRequestedAt && (ctx.caller.userId === user.id || ctx.caller.roles.includes('ADMIN') || Boolean(signedInDuring.get(ctx)?.has(user.id)));

/** register / logIn / signInWithProvider answer with the user who just signed in, though the request came without a token. */
async function signedIn<T extends { user: User }>(ctx: SubgraphContext, result: Promise<T>): Promise<T> {
  const value = await result;
  const users = signedInDuring.get(ctx) ?? new Set<string>();
  signedInDuring.set(ctx, users.add(value.user.id));
  return value;
}

export function identityResolvers({ accounts, sessions, providers, tokens, adminEmails }: IdentityServices): Resolvers {
  return {
    DateTime,
    Query: {
      me: (_: unknown, __: unknown, ctx: SubgraphContext) => accounts.me(ctx),
      userDeletion: (_: unknown, { userId }: { userId: string }, ctx: SubgraphContext) => findDeletion(ctx, userId),
    },
    Mutation: {
      register: (_: unknown, { input }: { input: RegisterInput }, ctx: SubgraphContext) =>
        mutationPayload(() => signedIn(ctx, accounts.register(ctx, input))),
      logIn: (_: unknown, { input }: { input: { email: string; password: string } }, ctx: SubgraphContext) =>
        mutationPayload(() => signedIn(ctx, accounts.logIn(ctx, input))),
      refreshSession: (_: unknown, { refreshToken }: { refreshToken: string }, ctx: SubgraphContext) =>
        mutationPayload(async () => ({ session: await sessions.refresh(ctx, refreshToken) })),
      logOut: async (_: unknown, { refreshToken }: { refreshToken: string }, ctx: SubgraphContext) => {
        await sessions.logOut(ctx, refreshToken);
        return { ok: true };
      },
      signInWithProvider: (_: unknown, { input }: { input: ProviderSignInInput }, ctx: SubgraphContext) =>
        mutationPayload(() => signedIn(ctx, providers.signIn(ctx, input))),
      linkProvider: (_: unknown, { input }: { input: ProviderSignInInput }, ctx: SubgraphContext) =>
        mutationPayload(async () => ({ user: await providers.link(ctx, input) })),
      updateProfile: (_: unknown, { input }: { input: ProfileChanges }, ctx: SubgraphContext) =>
        mutationPayload(async () => ({ user: await accounts.updateProfile(ctx, input) })),
      deleteAccount: (_: unknown, __: unknown, ctx: SubgraphContext) =>
        mutationPayload(async () => ({ deletedUserId: await accounts.deleteAccount(ctx) })),
      // @inaccessible: not in the gateway's API schema; collaboration calls it signed as SERVICE.
      issueGuestSession: async (_: unknown, { participantId, templateId }: { participantId: string; templateId: string }, ctx: SubgraphContext) => {
        checkGuestSessionRequest(ctx.caller, participantId, templateId);
        const issued = await tokens.issueGuest(participantId, templateId);
        ctx.log.info({ participantId, templateId, expiresAt: issued.expiresAt }, 'guest session issued');
        return { accessToken: issued.token, accessTokenExpiresAt: issued.expiresAt };
      },
    },
    User: {
      __resolveReference: (ref: { id: string }, ctx: SubgraphContext) => userById(ctx).load(ref.id),
      // The role the user's sessions carry (ADMIN_EMAILS included), not just the stored grant.
      role: (user: User) => (rolesOf(user, adminEmails).includes('ADMIN') ? 'ADMIN' : 'USER'),
      email: (user: User, _: unknown, ctx: SubgraphContext) => (canSeePrivate(user, ctx) ? user.email : null),
      providers: (user: User, _: unknown, ctx: SubgraphContext) => (canSeePrivate(user, ctx) ? linksByUser(ctx).load(user.id) : null),
    },
  };
}
