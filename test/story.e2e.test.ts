import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createEnvelope } from '../platform/events/envelope.js';
import { signCaller, type Caller } from '../platform/internal-auth.js';
import { startFakeOidcIssuer, type FakeOidcIssuer } from './fakes/oidc-issuer.js';
import { captureEvents } from './support/capture.js';
import { runNpm } from './support/npm.js';
import { clientOperation } from './support/clients.js';
import { startTestStack, type TestStack } from './support/stack.js';

/** ../shared/clients/story.graphql through the gateway, on real PostgreSQL and JetStream, with the local analyser. */
const op = {
  register: clientOperation('Register'),
  signIn: clientOperation('SignInWithProvider'),
  delete: clientOperation('DeleteAccount'),
  changePlan: clientOperation('ChangePlan'),
  create: clientOperation('CreateStory'),
  update: clientOperation('UpdateStory'),
  publish: clientOperation('PublishStory'),
  archive: clientOperation('ArchiveStory'),
  analyze: clientOperation('AnalyzeStory'),
  story: clientOperation('Story'),
  myStories: clientOperation('MyStories'),
  published: clientOperation('PublishedStories'),
};

const FOX = `Mira lived at the edge of the forest with her grandfather, Old Tom.
Every evening Mira climbed the hill to watch the lights of the village. Old Tom warned her about the fox that hunted there.
One night the fox came to the hill, but Mira was brave and curious, and she sat very still. The fox was hungry and afraid.
Mira shared her bread with the fox. Old Tom found them together at dawn and laughed with joy.`;

let stack: TestStack;
let google: FakeOidcIssuer;
let adminToken: string;
let events: Awaited<ReturnType<typeof captureEvents>>;
let db: pg.Client;

beforeAll(async () => {
  google = await startFakeOidcIssuer();
  stack = await startTestStack({
    env: { ADMIN_EMAILS: 'story-admin@example.com', GOOGLE_CLIENT_ID: 'google-client', GOOGLE_JWKS_URL: google.jwksUrl, GOOGLE_ISSUER: google.issuerUrl, STORY_ANALYSIS_POLL_MS: '200' },
  });
  events = await captureEvents(stack.transport, ['story.>']);
  db = new pg.Client({ connectionString: stack.databaseUrl });
  await db.connect();
  const idToken = await google.signIdToken({ sub: 'g-story-admin', aud: 'google-client', email: 'story-admin@example.com', email_verified: true, name: 'Admin' });
  adminToken = (await stack.gql(op.signIn, { input: { provider: 'GOOGLE', idToken } })).data.signInWithProvider.session.accessToken;
});

afterAll(async () => {
  await db?.end();
  await events?.stop();
  await stack?.close();
  await google?.stop();
});

/** A new account, once billing gave it its FREE plan and the story subgraph has learnt it. */
async function member(name: string) {
  const res = await stack.gql(op.register, { input: { email: `${name}-${randomUUID().slice(0, 8)}@example.com`, password: 'correct horse battery', displayName: name } });
  expect(res.data.register.userErrors).toEqual([]);
  const id: string = res.data.register.user.id;
  await vi.waitFor(
    async () => {
      const { rowCount } = await db.query('select 1 from story.entitlement where user_id = $1', [id]);
      if (!rowCount) throw new Error('the story subgraph has not seen the membership yet');
    },
    { timeout: 10_000, interval: 20 },
  );
  return { id, token: res.data.register.session.accessToken as string };
}

/** Waits until the story subgraph's projection of entitlements has the user on `tier`. */
const planKnown = (userId: string, tier: string) =>
  vi.waitFor(
    async () => {
      const { rows } = await db.query('select tier from story.entitlement where user_id = $1', [userId]);
      if (rows[0]?.tier !== tier) throw new Error(`the story subgraph has ${rows[0]?.tier ?? 'no plan'}`);
    },
    { timeout: 10_000, interval: 20 },
  );

const create = (token: string, input: Record<string, unknown>) => stack.gql(op.create, { input }, { token });

async function draft(token: string, title = 'The Fox on the Hill', content = FOX) {
  const res = await create(token, { title, content, category: 'bedtime', genre: 'fable' });
  expect(res.data.createStory.userErrors).toEqual([]);
  return res.data.createStory.story.id as string;
}

async function published(token: string, title?: string) {
  const id = await draft(token, title);
  const res = await stack.gql(op.publish, { id }, { token });
  expect(res.data.publishStory.userErrors).toEqual([]);
  return id;
}

const analysisOf = (id: string, token: string, status: string) =>
  vi.waitFor(
    async () => {
      const res = await stack.gql(op.story, { id }, { token });
      const analysis = res.data.story.analysis;
      if (analysis?.status !== status) throw new Error(`analysis is ${JSON.stringify(analysis?.status)}`);
      return res.data.story;
    },
    { timeout: 10_000, interval: 50 },
  );

describe('writing and publishing', () => {
  it('creates, updates, publishes, analyses and archives a story with the client operations', async () => {
    const ada = await member('Ada');
    const created = await create(ada.token, { title: '  The Fox on the Hill ', content: FOX, category: 'bedtime', customization: { tone: 'WHIMSICAL', language: 'en-gb' } });
    expect(created.data.createStory.userErrors).toEqual([]);
    const story = created.data.createStory.story;
    expect(story).toMatchObject({ title: 'The Fox on the Hill', status: 'DRAFT', author: { id: ada.id, displayName: 'Ada' } });
    const createdEvent = await events.waitFor((e) => e.type === 'story.created' && e.payload.storyId === story.id);
    expect(createdEvent).toMatchObject({ userId: ada.id, serviceName: 'story', payload: { title: 'The Fox on the Hill', category: 'bedtime', genre: null } });

    const updated = await stack.gql(op.update, { id: story.id, input: { title: 'The Fox and Mira', genre: 'fable' } }, { token: ada.token });
    expect(updated.data.updateStory).toMatchObject({ story: { id: story.id, title: 'The Fox and Mira', content: FOX }, userErrors: [] });
    expect((await events.waitFor((e) => e.type === 'story.updated' && e.payload.storyId === story.id)).payload.changed).toEqual(['title', 'genre']);

    const publishedRes = await stack.gql(op.publish, { id: story.id }, { token: ada.token });
    expect(publishedRes.data.publishStory).toMatchObject({ story: { id: story.id, status: 'PUBLISHED' }, userErrors: [] });
    expect(Date.parse(publishedRes.data.publishStory.story.publishedAt)).toBeGreaterThan(0);
    await events.waitFor((e) => e.type === 'story.published' && e.payload.storyId === story.id);

    // Publishing had it analysed, by the local analyser (no key anywhere in this stack).
    const analysed = await analysisOf(story.id, ada.token, 'COMPLETED');
    expect(analysed).toMatchObject({ status: 'PUBLISHED', category: 'bedtime', genre: 'fable', author: { membership: { plan: { tier: 'FREE' } } } });
    expect(analysed.analysis.characters.map((c: { name: string }) => c.name)).toEqual(expect.arrayContaining(['Mira', 'Old Tom']));
    expect(analysed.analysis.readingTimeMinutes).toBe(1);
    expect(analysed.analysis.summary.length).toBeGreaterThan(20);
    expect(analysed.analysis.emotions.length).toBeGreaterThan(0);
    const completed = await events.waitFor((e) => e.type === 'story.analysis.completed' && e.payload.storyId === story.id);
    expect(completed.payload).toMatchObject({ provider: 'local', storyId: story.id });
    // The completion continues the trace of the publish that asked for it.
    const publishEvent = events.received.find((e) => e.type === 'story.published' && e.payload.storyId === story.id)!;
    expect(completed.correlationId).toBe(publishEvent.correlationId);

    // Analysing again keeps the characters' ids.
    const ids = analysed.analysis.characters.map((c: { id: string }) => c.id);
    const again = await stack.gql(op.analyze, { id: story.id }, { token: ada.token });
    expect(again.data.analyzeStory.userErrors).toEqual([]);
    expect(['PENDING', 'RUNNING', 'COMPLETED']).toContain(again.data.analyzeStory.story.analysis.status);
    await vi.waitFor(async () => expect(events.received.filter((e) => e.type === 'story.analysis.completed' && e.payload.storyId === story.id)).toHaveLength(2), { timeout: 10_000 });
    expect((await analysisOf(story.id, ada.token, 'COMPLETED')).analysis.characters.map((c: { id: string }) => c.id)).toEqual(ids);

    const archived = await stack.gql(op.archive, { id: story.id }, { token: ada.token });
    expect(archived.data.archiveStory).toEqual({ story: { id: story.id, status: 'ARCHIVED' }, userErrors: [] });
    expect((await events.waitFor((e) => e.type === 'story.archived' && e.payload.storyId === story.id)).payload.reason).toBe('AUTHOR');
    const archivedAgain = await stack.gql(op.archive, { id: story.id }, { token: ada.token });
    expect(archivedAgain.data.archiveStory.userErrors[0].code).toBe('ALREADY_ARCHIVED');
    const changeArchived = await stack.gql(op.update, { id: story.id, input: { title: 'New' } }, { token: ada.token });
    expect(changeArchived.data.updateStory.userErrors[0].code).toBe('STORY_ARCHIVED');
  });

  it("lists the author's stories newest first, by status, in pages", async () => {
    const bo = await member('Bo');
    const first = await draft(bo.token, 'One');
    const second = await published(bo.token, 'Two');
    const third = await draft(bo.token, 'Three');
    const all = await stack.gql(op.myStories, { first: 2 }, { token: bo.token });
    expect(all.data.me.stories.totalCount).toBe(3);
    expect(all.data.me.stories.edges.map((e: any) => e.node.id)).toEqual([third, second]);
    expect(all.data.me.stories.pageInfo.hasNextPage).toBe(true);
    const next = await stack.gql(op.myStories, { first: 2, after: all.data.me.stories.pageInfo.endCursor }, { token: bo.token });
    expect(next.data.me.stories.edges.map((e: any) => e.node.id)).toEqual([first]);
    expect(next.data.me.stories.pageInfo).toEqual({ hasNextPage: false, endCursor: next.data.me.stories.edges[0].cursor });
    const drafts = await stack.gql(op.myStories, { status: 'DRAFT' }, { token: bo.token });
    expect(drafts.data.me.stories).toMatchObject({ totalCount: 2 });
    expect(drafts.data.me.stories.edges.map((e: any) => e.node.title)).toEqual(['Three', 'One']);
    expect(drafts.data.me.stories.edges[0].node.analysis).toBeNull();
  });

  it('shows the public feed most recently published first, with authors from identity', async () => {
    const cy = await member('Cy');
    const a = await published(cy.token, 'Feed A');
    const b = await published(cy.token, 'Feed B');
    const feed = await stack.gql(op.published, { first: 2 });
    expect(feed.errors).toBeUndefined();
    expect(feed.data.publishedStories.edges.map((e: any) => e.node.id)).toEqual([b, a]);
    expect(feed.data.publishedStories.edges[0].node).toMatchObject({ title: 'Feed B', genre: 'fable', author: { id: cy.id, displayName: 'Cy', avatarUrl: null } });
    const all = await stack.gql(op.published, { first: 100 });
    const rest = await stack.gql(op.published, { first: 100, after: feed.data.publishedStories.pageInfo.endCursor });
    // The next page is exactly what follows b and a, none of them again.
    expect(rest.data.publishedStories.edges.map((e: any) => e.node.id)).toEqual(all.data.publishedStories.edges.slice(2).map((e: any) => e.node.id));
    expect(rest.data.publishedStories.edges.length).toBeGreaterThan(0);
    expect(rest.data.publishedStories.totalCount).toBe(feed.data.publishedStories.totalCount);
  });
});

describe('the plan limit', () => {
  it('lets ten concurrent creates on FREE make exactly three stories', async () => {
    const dee = await member('Dee');
    const results = await Promise.all(Array.from({ length: 10 }, (_, n) => create(dee.token, { title: `Race ${n}`, content: 'A race.' })));
    const outcomes = results.map((r) => r.data.createStory.userErrors[0]?.code ?? 'CREATED');
    expect(outcomes.filter((o) => o === 'CREATED')).toHaveLength(3);
    expect(outcomes.filter((o) => o === 'PLAN_LIMIT_REACHED')).toHaveLength(7);
    for (const refused of results.filter((r) => r.data.createStory.userErrors.length)) expect(refused.data.createStory.story).toBeNull();
    const { rows } = await db.query('select count(*)::int as n from story.story where author_id = $1', [dee.id]);
    expect(rows[0].n).toBe(3);
    expect((await stack.gql(op.myStories, {}, { token: dee.token })).data.me.stories.totalCount).toBe(3);
  });

  it('applies a higher limit within a second of changePlan returning', async () => {
    const eve = await member('Eve');
    for (const n of [1, 2, 3]) await draft(eve.token, `Mine ${n}`);
    expect((await create(eve.token, { title: 'Fourth', content: '' })).data.createStory.userErrors[0].code).toBe('PLAN_LIMIT_REACHED');
    const changed = await stack.gql(op.changePlan, { tier: 'SILVER' }, { token: eve.token });
    expect(changed.data.changePlan.userErrors).toEqual([]);
    const upgradedAt = Date.now();
    const fourth = await vi.waitFor(
      async () => {
        const res = await create(eve.token, { title: 'Fourth', content: '' });
        if (res.data.createStory.userErrors.length) throw new Error(res.data.createStory.userErrors[0].code);
        return res.data.createStory.story;
      },
      { timeout: 1000, interval: 20 },
    );
    expect(fourth.status).toBe('DRAFT');
    expect(Date.now() - upgradedAt).toBeLessThan(1000);

    // A plan event older than the one applied (a replayed dead letter, say) changes nothing,
    // even with the same timestamp: the membership's version decides.
    const stale = createEnvelope(
      {
        type: 'subscription.created',
        userId: eve.id,
        payload: { userId: eve.id, membershipVersion: 1, tier: 'FREE', status: 'ACTIVE', currentPeriodEnd: new Date().toISOString(), entitlements: { tier: 'FREE', storiesPerMonth: 3, collaboratorsPerStory: 1 } },
      },
      { serviceName: 'billing' },
      (await db.query('select as_of from story.entitlement where user_id = $1', [eve.id])).rows[0].as_of,
    );
    await stack.transport.publish(stale);
    await vi.waitFor(
      async () => expect((await db.query(`select 1 from story.inbox where consumer = 'story-projections' and event_id = $1`, [stale.id])).rowCount).toBe(1),
      { timeout: 10_000, interval: 20 },
    );
    expect((await db.query('select tier, stories_per_month from story.entitlement where user_id = $1', [eve.id])).rows).toEqual([{ tier: 'SILVER', stories_per_month: 10 }]);
  });
});

describe('plan events from before membership versions', () => {
  it('orders them by time among themselves', async () => {
    const userId = randomUUID();
    const legacy = (tier: string, storiesPerMonth: number | null, at: Date) =>
      createEnvelope({ type: 'subscription.upgraded', userId, payload: { userId, fromTier: 'FREE', toTier: tier, entitlements: { tier, storiesPerMonth, collaboratorsPerStory: null } } }, { serviceName: 'billing' }, at);
    const gold = legacy('GOLD', 30, new Date(Date.now() - 1000));
    const silver = legacy('SILVER', 10, new Date(Date.now() - 2000));
    await stack.transport.publish(gold);
    await stack.transport.publish(silver);
    await vi.waitFor(
      async () => expect((await db.query(`select 1 from story.inbox where consumer = 'story-projections' and event_id = any($1)`, [[gold.id, silver.id]])).rowCount).toBe(2),
      { timeout: 10_000, interval: 20 },
    );
    expect((await db.query('select tier, membership_version from story.entitlement where user_id = $1', [userId])).rows).toEqual([{ tier: 'GOLD', membership_version: 0 }]);
  });
});

describe('who may read and change a story', () => {
  let owner: { id: string; token: string };
  let other: { id: string; token: string };
  let draftId: string;
  let publishedId: string;

  beforeAll(async () => {
    owner = await member('Owner');
    other = await member('Other');
    draftId = await draft(owner.token, 'Secret draft');
    publishedId = await published(owner.token, 'Public story');
  });

  it('lets anyone read a published story, with or without a session', async () => {
    for (const token of [undefined, other.token]) {
      const res = await stack.gql(op.story, { id: publishedId }, token ? { token } : {});
      expect(res.errors).toBeUndefined();
      expect(res.data.story).toMatchObject({ id: publishedId, title: 'Public story', content: FOX });
      // Someone else's plan is not theirs to see.
      expect(res.data.story.author.membership).toBeNull();
    }
  });

  it("refuses someone else's draft: FORBIDDEN, or UNAUTHENTICATED without a session", async () => {
    const asOther = await stack.gql(op.story, { id: draftId }, { token: other.token });
    expect(asOther.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(asOther.data.story).toBeNull();
    const anonymous = await stack.gql(op.story, { id: draftId });
    expect(anonymous.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(JSON.stringify(asOther)).not.toContain('Secret draft');
  });

  it("refuses changes to someone else's story, and changes nothing", async () => {
    const attempts = [
      stack.gql(op.update, { id: publishedId, input: { title: 'Mine now' } }, { token: other.token }),
      stack.gql(op.publish, { id: draftId }, { token: other.token }),
      stack.gql(op.archive, { id: publishedId }, { token: other.token }),
      stack.gql(op.analyze, { id: draftId }, { token: other.token }),
    ];
    for (const res of await Promise.all(attempts)) expect(res.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const unsigned = await stack.gql(op.archive, { id: publishedId });
    expect(unsigned.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    const { rows } = await db.query('select id, title, status from story.story where author_id = $1 order by created_at', [owner.id]);
    expect(rows).toEqual([
      { id: draftId, title: 'Secret draft', status: 'DRAFT' },
      { id: publishedId, title: 'Public story', status: 'PUBLISHED' },
    ]);
  });

  it("shows others only an author's published stories, and refuses their drafts deep in a selection", async () => {
    const nested = `query($id: ID!, $status: StoryStatus) { story(id: $id) { author { stories(status: $status) { totalCount edges { node { id status } } } } } }`;
    const visible = await stack.gql(nested, { id: publishedId }, { token: other.token });
    expect(visible.data.story.author.stories).toEqual({ totalCount: 1, edges: [{ node: { id: publishedId, status: 'PUBLISHED' } }] });
    const drafts = await stack.gql(nested, { id: publishedId, status: 'DRAFT' }, { token: other.token });
    expect(drafts.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(JSON.stringify(drafts.data)).not.toContain(draftId);
    const own = await stack.gql(nested, { id: publishedId, status: 'DRAFT' }, { token: owner.token });
    expect(own.data.story.author.stories.edges).toEqual([{ node: { id: draftId, status: 'DRAFT' } }]);
  });

  it('applies the same rule to references from other subgraphs (Story _entities)', async () => {
    const entities = async (caller: Caller, ids: string[]) => {
      const subgraph = stack.app.subgraphs.find((s) => s.name === 'story')!;
      const operation = {
        query: `query ($r: [_Any!]!) { _entities(representations: $r) { ... on Story { id title status } } }`,
        variables: { r: ids.map((id) => ({ __typename: 'Story', id })) },
      };
      const signed = signCaller(stack.config.INTERNAL_SECRET, { audience: 'story', caller, correlationId: randomUUID(), operation });
      const res = await fetch(`${subgraph.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...signed }, body: JSON.stringify(operation) });
      return (await res.json()) as { data: { _entities: ({ id: string; title: string } | null)[] }; errors?: { extensions?: { code?: string } }[] };
    };
    const asOther = await entities({ userId: other.id, roles: ['USER'] }, [publishedId, draftId]);
    expect(asOther.data._entities).toEqual([{ id: publishedId, title: 'Public story', status: 'PUBLISHED' }, null]);
    expect(asOther.errors?.map((e) => e.extensions?.code)).toEqual(['FORBIDDEN']);
    const asOwner = await entities({ userId: owner.id, roles: ['USER'] }, [draftId]);
    expect(asOwner.errors).toBeUndefined();
    expect(asOwner.data._entities).toEqual([{ id: draftId, title: 'Secret draft', status: 'DRAFT' }]);
  });

  it('answers null for a story that does not exist and BAD_USER_INPUT for an id that cannot be one', async () => {
    expect((await stack.gql(op.story, { id: randomUUID() })).data.story).toBeNull();
    expect((await stack.gql(op.story, { id: 'not-an-id' })).errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const missing = await stack.gql(op.publish, { id: randomUUID() }, { token: owner.token });
    expect(missing.data.publishStory.userErrors).toEqual([{ code: 'STORY_NOT_FOUND', field: 'id', message: 'There is no such story' }]);
  });
});

describe('bad input', () => {
  it('refuses an empty title and a 1 MB content with INVALID_INPUT, and stores nothing', async () => {
    const fay = await member('Fay');
    const empty = await create(fay.token, { title: '  ', content: 'Text' });
    expect(empty.data.createStory).toEqual({ story: null, userErrors: [{ code: 'INVALID_INPUT', field: 'title', message: 'Give the story a title' }] });
    // 1 MiB: within the gateway's variables limit (2 MiB; test/gateway-limits.e2e.test.ts), over a story's.
    const huge = await create(fay.token, { title: 'Huge', content: 'x'.repeat(1024 * 1024) });
    expect(huge.status).toBe(200);
    expect(huge.data.createStory.userErrors).toEqual([
      { code: 'INVALID_INPUT', field: 'content', message: 'A story has at most 200,000 characters (this one has 1,048,576)' },
    ]);
    const badLanguage = await create(fay.token, { title: 'T', content: '', customization: { language: 'english please' } });
    expect(badLanguage.data.createStory.userErrors[0]).toMatchObject({ code: 'INVALID_INPUT', field: 'customization.language' });
    const wrongType = await create(fay.token, { title: 'T', content: '', customization: { tone: 'LOUD' } });
    expect(wrongType.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const { rows } = await db.query('select count(*)::int as n from story.story where author_id = $1', [fay.id]);
    expect(rows[0].n).toBe(0);
    // None of it counted against the plan: three stories can still be written.
    for (const n of [1, 2, 3]) await draft(fay.token, `Fine ${n}`);
  });

  it('does not publish or analyse an empty draft', async () => {
    const gus = await member('Gus');
    const id = await draft(gus.token, 'Empty', '');
    expect((await stack.gql(op.publish, { id }, { token: gus.token })).data.publishStory.userErrors[0].code).toBe('EMPTY_CONTENT');
    expect((await stack.gql(op.analyze, { id }, { token: gus.token })).data.analyzeStory.userErrors[0].code).toBe('EMPTY_CONTENT');
    const shown = await published(gus.token, 'Shown');
    const emptied = await stack.gql(op.update, { id: shown, input: { content: ' ' } }, { token: gus.token });
    expect(emptied.data.updateStory.userErrors).toEqual([{ code: 'EMPTY_CONTENT', field: 'content', message: expect.any(String) }]);
    expect((await stack.gql(op.story, { id: shown })).data.story.content).toBe(FOX);
  });
});

describe('reactions to other domains', () => {
  it("archives every story of a deleted account and drops them from the feed", async () => {
    const hal = await member('Hal');
    const kept = await draft(hal.token, 'Hal draft');
    const shown = await published(hal.token, 'Hal public');
    const deleted = await stack.gql(op.delete, {}, { token: hal.token });
    expect(deleted.data.deleteAccount.userErrors).toEqual([]);
    await vi.waitFor(
      async () => {
        const archived = events.received.filter((e) => e.type === 'story.archived' && e.userId === hal.id && e.payload.reason === 'ACCOUNT_DELETED');
        expect(archived.map((e) => e.payload.storyId).sort()).toEqual([kept, shown].sort());
      },
      { timeout: 10_000, interval: 50 },
    );
    const { rows } = await db.query('select status, archived_at is not null as archived from story.story where author_id = $1', [hal.id]);
    expect(rows).toEqual([
      { status: 'ARCHIVED', archived: true },
      { status: 'ARCHIVED', archived: true },
    ]);
    const feed = await stack.gql(op.published, { first: 100 });
    expect(feed.data.publishedStories.edges.map((e: any) => e.node.id)).not.toContain(shown);
    // The access token outlives the account; it creates nothing more.
    const late = await create(hal.token, { title: 'After the end', content: '' });
    expect(late.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect((await db.query('select count(*)::int as n from story.story where author_id = $1', [hal.id])).rows[0].n).toBe(2);
  });

  it('marks a story when its collaboration completes, and records cloned voices', async () => {
    const ivy = await member('Ivy');
    const id = await published(ivy.token, 'Roleplayed');
    const templateId = randomUUID();
    // As the collaboration and narration subgraphs (issues to come) will publish them.
    await stack.transport.publish(createEnvelope({ type: 'collaboration.completed', userId: ivy.id, payload: { templateId, storyId: id } }, { serviceName: 'collaboration' }));
    await stack.transport.publish(createEnvelope({ type: 'voice.cloned', userId: ivy.id, payload: { voiceId: randomUUID() } }, { serviceName: 'narration' }));
    const marked = await events.waitFor((e) => e.type === 'story.collaboration.completed' && e.payload.storyId === id);
    expect(marked).toMatchObject({ userId: ivy.id, payload: { storyId: id, templateId } });
    await vi.waitFor(
      async () => {
        const res = await stack.gql(`query($id: ID!) { story(id: $id) { narrationAvailable collaborationCompletedAt } }`, { id }, { token: ivy.token });
        expect(res.data.story.narrationAvailable).toBe(true);
        expect(res.data.story.collaborationCompletedAt).not.toBeNull();
      },
      { timeout: 10_000, interval: 50 },
    );
  });
});

describe('replay', () => {
  it('npm run replay -- story-projections rebuilds the entitlements and voices from the stream', async () => {
    const snapshot = async () => ({
      entitlements: (await db.query('select * from story.entitlement order by user_id')).rows,
      voices: (await db.query('select * from story.author_voice order by user_id')).rows,
    });
    const before = await snapshot();
    // The tests above gave some users other plans and one a voice.
    expect(before.entitlements.map((e) => e.tier)).toEqual(expect.arrayContaining(['FREE', 'SILVER']));
    expect(before.voices).toHaveLength(1);
    await db.query(`update story.entitlement set tier = 'PLATINUM', stories_per_month = null`);
    await db.query('delete from story.author_voice');

    const { code, output } = await runNpm(['run', 'replay', '--', 'story-projections'], stack.scriptEnv);
    expect(code, output).toBe(0);
    expect(await snapshot()).toEqual(before);
  });
});

describe('no N+1', () => {
  /** SELECTs a subgraph runs on its domain tables while `work` runs (not the relay's, consumers' or worker's). */
  async function selectsDuring(work: () => Promise<unknown>) {
    const tables: Record<string, RegExp> = {
      identity: /^select .* from "identity"\."(user|provider_link)"/is,
      billing: /^select .* from "billing"\."(membership|plan|usage)"/is,
      story: /^select .* from "story"\."(story|story_analysis|author_voice)"/is,
    };
    const counts: Record<string, number> = { identity: 0, billing: 0, story: 0 };
    const detach: (() => void)[] = [];
    for (const [name, pattern] of Object.entries(tables)) {
      const knex = stack.app.subgraphs.find((s) => s.name === name)!.orm.em.getConnection().getKnex();
      const listener = (q: { sql: string }) => {
        if (pattern.test(q.sql.trim())) counts[name]!++;
      };
      knex.on('query', listener);
      detach.push(() => knex.off('query', listener));
    }
    try {
      await work();
    } finally {
      for (const off of detach) off();
    }
    return counts;
  }

  it('costs the same queries per subgraph for 10 and for 100 stories with authors, plans and story lists', async () => {
    // Four authors on PLATINUM (no monthly limit), 25 published stories each.
    const authors = await Promise.all(['Jo', 'Kit', 'Lu', 'Mo'].map((name) => member(name)));
    for (const author of authors) {
      expect((await stack.gql(op.changePlan, { tier: 'PLATINUM' }, { token: author.token })).data.changePlan.userErrors).toEqual([]);
      await planKnown(author.id, 'PLATINUM');
    }
    await Promise.all(
      authors.map(async (author) => {
        for (let n = 0; n < 25; n++) await published(author.token, `Batch ${n}`);
      }),
    );
    // The analyses the publishes queued read their own rows: let them finish before counting.
    await vi.waitFor(
      async () => {
        const { rows } = await db.query(`select count(*)::int as n from story.story_analysis where status in ('PENDING', 'RUNNING')`);
        expect(rows[0].n).toBe(0);
      },
      { timeout: 30_000, interval: 100 },
    );
    const feed = `query($first: Int) { publishedStories(first: $first) { totalCount edges { node { id title genre analysis { status } narrationAvailable
      author { id displayName membership { plan { tier } } stories(first: 2) { totalCount edges { node { id } } } } } } } }`;
    const page = async (first: number) => {
      const res = await stack.gql(feed, { first }, { token: adminToken });
      expect(res.errors).toBeUndefined();
      expect(res.data.publishedStories.edges).toHaveLength(first);
      expect(new Set(res.data.publishedStories.edges.map((e: any) => e.node.author.membership.plan.tier))).toEqual(new Set(['PLATINUM']));
      return res;
    };
    const ten = await selectsDuring(() => page(10));
    const hundred = await selectsDuring(() => page(100));
    expect(hundred).toEqual(ten);
    // One query per table and level: stories and their count, analyses, voices, the authors' lists and counts.
    expect(ten).toEqual({ identity: 1, billing: 2, story: 6 });
  });
});

describe('the event catalog', () => {
  it('lists every event the story subgraph publishes, with exactly its payload fields', async () => {
    const catalog = JSON.parse(readFileSync(new URL('../schema/events/catalog.json', import.meta.url), 'utf8'));
    const types = ['story.created', 'story.updated', 'story.published', 'story.archived', 'story.analysis.completed', 'story.collaboration.completed'];
    for (const type of types) await events.waitFor((e) => e.type === type);
    for (const event of events.received.filter((e) => e.serviceName === 'story')) {
      expect(catalog[event.type]?.publisher, event.type).toBe('story');
      expect(Object.keys(event.payload).sort(), event.type).toEqual(Object.keys(catalog[event.type].payload).sort());
      expect(event.version).toBe(catalog[event.type].version);
    }
  });
});
