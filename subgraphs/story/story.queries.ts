import type { EntityManager } from '@mikro-orm/postgresql';
import { pageSize, timeIdCursor, toConnection, type Connection, type PageArgs } from '../../platform/graphql/connection.js';
import type { SubgraphContext } from '../../platform/subgraph/context.js';
import { AuthorVoice, Story, StoryAnalysis } from './story.entities.js';
import type { StoryStatus } from './story.rules.js';
import { tableOf as table } from '../../platform/db/tables.js';

/**
 * Reads with request-scoped DataLoaders: whatever a response holds (a page of 100 stories,
 * their authors' story lists), each level costs one query per table, not one per row.
 */

/** Every column but the content, which lists never need (it can be 200,000 characters); Story.content loads it. */
function listColumns(em: EntityManager): string {
  return em
    .getMetadata()
    .get<Story>(Story.name)
    .props.filter((prop) => prop.name !== 'content')
    .map((prop) => `s."${prop.fieldNames[0]}"`)
    .join(', ');
}

/** Stories by id, without their content. */
export const storyById = (ctx: SubgraphContext) =>
  ctx.loader<string, Story | null>('storyById', async (ids) => {
    // Without their content: Story.content loads it when a selection asks for it.
    const rows = (await ctx.em.find(Story, { id: { $in: [...ids] } }, { exclude: ['content'] })) as Story[];
    const byId = new Map(rows.map((s) => [s.id, s]));
    return ids.map((id) => byId.get(id) ?? null);
  });

export const contentById = (ctx: SubgraphContext) =>
  ctx.loader<string, string>('contentById', async (ids) => {
    const rows = await ctx.em.getConnection().execute<{ id: string; content: string }[]>(`select "id", "content" from ${table(ctx.em, 'story')} where "id" in (?)`, [[...ids]]);
    const byId = new Map(rows.map((r) => [r.id, r.content]));
    return ids.map((id) => byId.get(id) ?? new Error(`No story ${id}`));
  });

export const analysisByStory = (ctx: SubgraphContext) =>
  ctx.loader<string, StoryAnalysis | null>('analysisByStory', async (ids) => {
    const rows = await ctx.em.find(StoryAnalysis, { storyId: { $in: [...ids] } });
    const byId = new Map(rows.map((a) => [a.storyId, a]));
    return ids.map((id) => byId.get(id) ?? null);
  });

export const hasVoice = (ctx: SubgraphContext) =>
  ctx.loader<string, boolean>('authorHasVoice', async (userIds) => {
    const rows = await ctx.em.find(AuthorVoice, { userId: { $in: [...userIds] } }, { fields: ['userId'] });
    const withVoice = new Set(rows.map((v) => v.userId));
    return userIds.map((id) => withVoice.has(id));
  });

/** The published feed, most recently published first. */
export async function publishedStories(ctx: SubgraphContext, args: PageArgs): Promise<Connection<Story>> {
  const first = pageSize(args.first);
  const after = timeIdCursor(args.after);
  const em = ctx.em;
  const page = em
    .getConnection()
    .execute<Record<string, unknown>[]>(
      `select ${listColumns(em)} from ${table(em, 'story')} s
        where s."status" = 'PUBLISHED' ${after ? `and (s."published_at", s."id") < (?::timestamptz, ?::uuid)` : ''}
        order by s."published_at" desc, s."id" desc
        limit ?`,
      [...(after ? [after.at, after.id] : []), first + 1],
    );
  const [rows, totalCount] = await Promise.all([page, em.count(Story, { status: 'PUBLISHED' })]);
  return toConnection(
    rows.map((row) => em.map(Story, row)),
    first,
    totalCount,
    (story) => [story.publishedAt!.toISOString(), story.id],
  );
}

export interface StoryListKey {
  authorId: string;
  /** null: every status. */
  statuses: StoryStatus[] | null;
  first: number;
  after: { at: string; id: string } | null;
}

/**
 * Authors' stories, newest first. A response may ask for the stories of many authors (each
 * story's author's other stories); keys with the same filter and page are answered by one
 * windowed query and one grouped count, whatever the number of authors.
 */
export const storiesOfAuthor = (ctx: SubgraphContext) =>
  ctx.loader<StoryListKey, Connection<Story>>('storiesOfAuthor', async (keys) => {
    const groups = new Map<string, StoryListKey[]>();
    for (const key of keys) {
      const group = JSON.stringify([key.statuses, key.first, key.after]);
      groups.set(group, [...(groups.get(group) ?? []), key]);
    }
    const answers = new Map<StoryListKey, Connection<Story>>();
    await Promise.all(
      [...groups.values()].map(async (group) => {
        const { statuses, first, after } = group[0]!;
        const authors = [...new Set(group.map((k) => k.authorId))];
        const [pages, counts] = await Promise.all([pagesOf(ctx.em, authors, statuses, first, after), countsOf(ctx.em, authors, statuses)]);
        for (const key of group) {
          answers.set(key, toConnection(pages.get(key.authorId) ?? [], first, counts.get(key.authorId) ?? 0, (s) => [s.createdAt.toISOString(), s.id]));
        }
      }),
    );
    return keys.map((key) => answers.get(key)!);
  });

async function pagesOf(em: EntityManager, authors: string[], statuses: StoryStatus[] | null, first: number, after: StoryListKey['after']): Promise<Map<string, Story[]>> {
  const pages = new Map<string, Story[]>();
  const rows = await em.getConnection().execute<Record<string, unknown>[]>(
    `select * from (
       select ${listColumns(em)}, row_number() over (partition by s."author_id" order by s."created_at" desc, s."id" desc) as "rank"
         from ${table(em, 'story')} s
        where s."author_id" in (?)
          ${statuses ? 'and s."status" in (?)' : ''}
          ${after ? 'and (s."created_at", s."id") < (?::timestamptz, ?::uuid)' : ''}
     ) ranked
     where "rank" <= ?
     order by "author_id", "rank"`,
    [authors, ...(statuses ? [statuses] : []), ...(after ? [after.at, after.id] : []), first + 1],
  );
  for (const { rank: _rank, ...row } of rows) {
    const story = em.map(Story, row);
    pages.set(story.authorId, [...(pages.get(story.authorId) ?? []), story]);
  }
  return pages;
}

async function countsOf(em: EntityManager, authors: string[], statuses: StoryStatus[] | null): Promise<Map<string, number>> {
  const rows = await em.getConnection().execute<{ author_id: string; count: string }[]>(
    `select "author_id", count(*) as "count" from ${table(em, 'story')}
      where "author_id" in (?) ${statuses ? 'and "status" in (?)' : ''}
      group by "author_id"`,
    [authors, ...(statuses ? [statuses] : [])],
  );
  return new Map(rows.map((r) => [r.author_id, Number(r.count)]));
}
