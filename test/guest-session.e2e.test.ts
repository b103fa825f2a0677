import { randomUUID } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Caller } from '../platform/internal-auth.js';
import { querySubgraph } from '../platform/subgraph/internal-query.js';
import type { Topology } from '../platform/subgraph/module.js';
import { clientOperation } from './support/clients.js';
import { registerMember } from './support/people.js';
import { startTestStack, type TestStack } from './support/stack.js';
import { follow, wsClients } from './support/subscriptions.js';

/**
 * Guest sessions on the whole supergraph (real PostgreSQL and JetStream): identity issues them
 * only to a subgraph calling as SERVICE, never through the gateway, and the token they carry is
 * no user's: it reads what anyone may read and nothing an account is needed for.
 */
const op = {
  createStory: clientOperation('CreateStory'),
  publish: clientOperation('PublishStory'),
};

const ISSUE = `mutation Issue($participantId: ID!, $templateId: ID!) {
  issueGuestSession(participantId: $participantId, templateId: $templateId) { accessToken accessTokenExpiresAt }
}`;
const STORY = 'query($id: ID!) { story(id: $id) { id title status } }';
const SERVICE: Caller = { userId: null, roles: ['SERVICE'] };

let stack: TestStack;
let topology: Topology;
const ws = wsClients(() => stack.app.gatewayUrl);

beforeAll(async () => {
  stack = await startTestStack();
  // What a subgraph gets as its runtime's topology, made from the running stack.
  topology = {
    mode: 'ALL_IN_ONE',
    subgraphs: () => stack.app.subgraphs.map(({ name, url }) => ({ name, url })),
    publicUrl: () => stack.app.gatewayUrl.replace(/\/graphql$/, ''),
  };
});

afterAll(async () => {
  await ws.disposeAll();
  await stack?.close();
});

/** issueGuestSession straight to identity, signed with the internal secret as `caller`. */
const issue = (caller: Caller, participantId: string = randomUUID(), templateId: string = randomUUID()) =>
  querySubgraph<{ issueGuestSession: { accessToken: string; accessTokenExpiresAt: string } }>(topology, stack.config.INTERNAL_SECRET!, {
    subgraph: 'identity',
    caller,
    query: ISSUE,
    variables: { participantId, templateId },
  });

async function guestToken(): Promise<string> {
  const answer = await issue(SERVICE);
  expect(answer.errors).toEqual([]);
  return answer.data!.issueGuestSession.accessToken;
}

describe('issuing a guest session', () => {
  it('is not in the gateway schema: asking for it there fails validation', async () => {
    const res = await stack.gql(ISSUE, { participantId: randomUUID(), templateId: randomUUID() });
    expect(res.status).toBe(400);
    expect(res.data).toBeUndefined();
    expect(res.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(res.errors?.[0]?.message).toContain('issueGuestSession');
    // Nor can anyone see the field or its type by introspection.
    const types = await stack.gql('{ __type(name: "IssuedGuestSession") { name } __schema { mutationType { fields { name } } } }');
    expect(types.data.__type).toBeNull();
    expect(types.data.__schema.mutationType.fields.map((f: { name: string }) => f.name)).not.toContain('issueGuestSession');
  });

  it('gives a SERVICE caller a GUEST token scoped to the template, signed like a user token', async () => {
    const participantId = randomUUID();
    const templateId = randomUUID();
    const before = Math.floor(Date.now() / 1000);
    const answer = await issue(SERVICE, participantId, templateId);
    expect(answer.errors).toEqual([]);
    const { accessToken, accessTokenExpiresAt } = answer.data!.issueGuestSession;

    const claims = decodeJwt(accessToken);
    expect(claims).toMatchObject({
      sub: participantId,
      roles: ['GUEST'],
      scope: `collaboration:${templateId}`,
      iss: stack.config.JWT_ISSUER,
      aud: stack.config.JWT_AUDIENCE,
    });
    expect(Object.keys(claims).sort()).toEqual(['aud', 'exp', 'iat', 'iss', 'jti', 'roles', 'scope', 'sub']);
    expect(claims.iat).toBeGreaterThanOrEqual(before);
    expect(claims.exp! - claims.iat!).toBe(stack.config.GUEST_SESSION_TTL_SECONDS);
    expect(stack.config.GUEST_SESSION_TTL_SECONDS).toBe(7 * 24 * 3600);
    expect(new Date(accessTokenExpiresAt).getTime()).toBe(claims.exp! * 1000);

    // The same key and token type as a user's session.
    const user = await registerMember(stack, 'Kid');
    const userHeader = decodeProtectedHeader(user.token);
    expect(decodeProtectedHeader(accessToken)).toEqual({ alg: 'ES256', typ: 'at+jwt', kid: userHeader.kid });
  });

  it('refuses every caller but a SERVICE one FORBIDDEN, and ids that are not UUIDs', async () => {
    const user = await registerMember(stack, 'Ursula');
    const callers: Record<string, Caller> = {
      user: { userId: user.id, roles: ['USER'] },
      admin: { userId: user.id, roles: ['USER', 'ADMIN'] },
      anonymous: { userId: null, roles: [] },
      guest: { userId: null, roles: ['GUEST'], guest: { participantId: randomUUID(), templateId: randomUUID() } },
    };
    for (const [name, caller] of Object.entries(callers)) {
      const answer = await issue(caller);
      expect(answer.data, name).toBeNull();
      expect(answer.errors.map((e) => e.extensions?.code), name).toEqual(['FORBIDDEN']);
    }
    const badTemplate = await issue(SERVICE, randomUUID(), 'template-1');
    expect(badTemplate.errors.map((e) => e.extensions?.code)).toEqual(['BAD_USER_INPUT']);
  });
});

describe('a guest token at the gateway', () => {
  it('is no user: me is UNAUTHENTICATED, and neither can it write', async () => {
    const token = await guestToken();
    const me = await stack.gql('{ me { id } }', {}, { token });
    expect(me.data?.me ?? null).toBeNull();
    expect(me.errors?.map((e) => e.extensions?.code)).toEqual(['UNAUTHENTICATED']);
    const create = await stack.gql(op.createStory, { input: { title: 'By a guest', content: 'Text.' } }, { token });
    expect(create.errors?.map((e) => e.extensions?.code)).toEqual(['UNAUTHENTICATED']);
  });

  it("reads a PUBLISHED story but not someone's DRAFT", async () => {
    const author = await registerMember(stack, 'Ann');
    const story = (await stack.gql(op.createStory, { input: { title: 'Draft first', content: 'Once upon a time.' } }, { token: author.token })).data.createStory.story;
    const token = await guestToken();

    // The story subgraph answers a draft's non-author without an account UNAUTHENTICATED.
    const draft = await stack.gql(STORY, { id: story.id }, { token });
    expect(draft.data?.story ?? null).toBeNull();
    expect(draft.errors?.map((e) => e.extensions?.code)).toEqual(['UNAUTHENTICATED']);

    const published = await stack.gql(op.publish, { id: story.id }, { token: author.token });
    expect(published.data.publishStory.userErrors).toEqual([]);
    const read = await stack.gql(STORY, { id: story.id }, { token });
    expect(read.errors).toBeUndefined();
    expect(read.data.story).toEqual({ id: story.id, title: 'Draft first', status: 'PUBLISHED' });
  });

  it('cannot open a subscription connection: refused like an anonymous one', async () => {
    const query = 'subscription($jobId: ID!) { narrationJobUpdated(jobId: $jobId) { id status } }';
    const guest = follow(ws.client(await guestToken()), query, { jobId: randomUUID() });
    await guest.done;
    expect(guest.received).toEqual([]);
    expect((guest.error() as { code?: number }).code).toBe(4403);

    // A user's connection with the same subscription is accepted: the refusal is about the guest.
    const user = follow(ws.client((await registerMember(stack, 'Sub')).token), query, { jobId: randomUUID() });
    await user.done;
    expect(Array.isArray(user.error())).toBe(true);
  });
});
