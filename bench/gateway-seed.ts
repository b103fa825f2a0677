/**
 * The gateway bench's data, made through our gateway with the apps' own operations, as members
 * would: N members (Register), three stories each (the FREE plan's month), all published (which
 * has each analysed by the local analyser), the shortest of each member's read aloud by a stock
 * voice (the local speech provider). Stories are published round by round, so the newest page of
 * the feed has a different author on each story. Returns once every analysis and narration has
 * completed, so no background work runs while the gateways are timed.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { ALL_STORIES } from '../subgraphs/story/analysis/fixtures/stories.js';

export interface Seeded {
  members: number;
  stories: number;
  narrations: number;
  /** A story published, analysed (characters found) and narrated: the Story operation's. */
  storyId: string;
}

type Gql = (query: string, variables: Record<string, unknown>, token?: string) => Promise<any>;

const STORIES_PER_MEMBER = 3;
const WAIT_MS = 90_000;

export async function seed(gatewayUrl: string, members: number, progress: (event: string, fields?: Record<string, unknown>) => void): Promise<Seeded> {
  const { clientOperation } = await import('../scripts/client-operations.js');
  const gql = client(gatewayUrl);
  const run = randomBytes(3).toString('hex');
  const started = Date.now();

  const people = await inBatches(
    Array.from({ length: members }, (_, n) => n),
    4,
    async (n) => {
      const data = await gql(clientOperation('Register'), { input: { email: `bench-${run}-${n}@example.com`, password: 'correct horse battery', displayName: `Bench Author ${n}` } });
      return { n, token: data.register.session.accessToken as string };
    },
  );
  progress('seed: members registered', { members, ms: Date.now() - started });

  // Round r publishes every member's r-th story: the newest page has one story per author.
  const narrated: { storyId: string; token: string }[] = [];
  for (let round = 0; round < STORIES_PER_MEMBER; round++) {
    for (const person of people) {
      const fixture = ALL_STORIES[(person.n + round) % ALL_STORIES.length]!;
      // The last round's story is the first two paragraphs only: read aloud, it lasts ~30 s.
      const short = round === STORIES_PER_MEMBER - 1;
      const content = short ? fixture.content.split('\n\n').slice(0, 2).join('\n\n') : fixture.content;
      const created = await gql(clientOperation('CreateStory'), { input: { title: `${fixture.title} (${person.n}.${round})`, content, genre: fixture.genre } }, person.token);
      const storyId = created.createStory.story.id as string;
      await gql(clientOperation('PublishStory'), { id: storyId }, person.token);
      if (short) narrated.push({ storyId, token: person.token });
    }
  }
  const stories = members * STORIES_PER_MEMBER;
  progress('seed: stories published', { stories, ms: Date.now() - started });

  const jobs = await inBatches(narrated, 4, async ({ storyId, token }) => {
    const data = await gql(clientOperation('NarrateStory'), { input: { storyId, voice: 'STOCK', stockVoice: 'alloy' } }, token);
    return { id: data.narrateStory.job.id as string, token };
  });

  await until('every analysis COMPLETED', async () => {
    const data = await gql(`query BenchAnalyses($first: Int) { publishedStories(first: $first) { totalCount edges { node { analysis { status } } } } }`, { first: 100 });
    const statuses = data.publishedStories.edges.map((e: any) => e.node.analysis?.status);
    if (statuses.includes('FAILED')) throw new Error('an analysis FAILED');
    return data.publishedStories.totalCount === stories && statuses.every((s: string) => s === 'COMPLETED');
  });
  progress('seed: analyses completed', { stories, ms: Date.now() - started });

  await until('every narration COMPLETED', async () => {
    const statuses = await Promise.all(jobs.map(async (job) => (await gql(clientOperation('NarrationJob'), { id: job.id }, job.token)).narrationJob.status as string));
    if (statuses.includes('FAILED')) throw new Error('a narration FAILED');
    return statuses.every((s) => s === 'COMPLETED');
  });
  progress('seed: narrations completed', { narrations: jobs.length, ms: Date.now() - started });

  // The Story operation's story: the narrated one in which the analyser found the most characters.
  const found = await Promise.all(
    narrated.map(async ({ storyId }) => ({ storyId, characters: (await gql(`query BenchCharacters($id: ID!) { story(id: $id) { analysis { characters { id } } } }`, { id: storyId })).story.analysis.characters.length as number })),
  );
  const storyId = found.reduce((best, next) => (next.characters > best.characters ? next : best)).storyId;
  return { members, stories, narrations: jobs.length, storyId };
}

async function until(what: string, done: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`seeding: not ${what} within ${WAIT_MS} ms`);
    // A poll interval, not a guess at how long the work takes.
    await sleep(250);
  }
}

async function inBatches<T, R>(items: T[], size: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  for (let i = 0; i < items.length; i += size) results.push(...(await Promise.all(items.slice(i, i + size).map(work))));
  return results;
}

function client(url: string): Gql {
  return async (query, variables, token) => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await response.json()) as { data?: Record<string, unknown>; errors?: unknown[] };
    const userErrors = Object.values(body.data ?? {}).flatMap((field) => (field as { userErrors?: unknown[] } | null)?.userErrors ?? []);
    if (body.errors?.length || userErrors.length || !body.data) throw new Error(`seeding request failed (${response.status}): ${JSON.stringify(body.errors ?? userErrors)}`);
    return body.data;
  };
}
