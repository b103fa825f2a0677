import { badInput, forbidden, mutationPayload, unauthenticated } from '../../platform/errors.js';
import { isUuid } from '../../platform/formats.js';
import { pageSize, timeIdCursor, type PageArgs } from '../../platform/graphql/connection.js';
import { DateTime } from '../../platform/graphql/scalars.js';
import type { SubgraphContext } from '../../platform/subgraph/context.js';
import type { Resolvers } from '../../platform/subgraph/server.js';
import type { Story } from './story.entities.js';
import { analysisByStory, contentById, hasVoice, publishedStories, storiesOfAuthor, storyById } from './story.queries.js';
import { canRead, type StoryInput, type StoryStatus } from './story.rules.js';
import type { StoryService } from './story.service.js';

/** The story if the caller may read it: a draft or an archived story is its author's alone. */
async function readable(ctx: SubgraphContext, id: string): Promise<Story | null> {
  const story = await storyById(ctx).load(id);
  if (!story || canRead(story, ctx.caller.userId)) return story;
  throw ctx.caller.userId ? forbidden('Only its author reads a story that is not published') : unauthenticated(ctx.caller.authError);
}

/**
 * Which statuses of `authorId`'s stories the caller may list: all of their own, only the
 * published ones of anyone else (asking for another status of theirs is FORBIDDEN, also deep
 * in a selection such as a story's author's stories).
 */
function visibleStatuses(ctx: SubgraphContext, authorId: string, status: StoryStatus | null | undefined): StoryStatus[] | null {
  if (ctx.caller.userId === authorId) return status ? [status] : null;
  if (status && status !== 'PUBLISHED') {
    throw ctx.caller.userId ? forbidden('Only the author lists their stories that are not published') : unauthenticated(ctx.caller.authError);
  }
  return ['PUBLISHED'];
}

export function storyResolvers(stories: StoryService): Resolvers {
  return {
    DateTime,
    Query: {
      story: (_: unknown, { id }: { id: string }, ctx: SubgraphContext) => {
        if (!isUuid(id)) throw badInput('id is not a story id', 'id');
        return readable(ctx, id);
      },
      publishedStories: (_: unknown, args: PageArgs, ctx: SubgraphContext) => publishedStories(ctx, args),
    },
    Mutation: {
      createStory: (_: unknown, { input }: { input: StoryInput }, ctx: SubgraphContext) => mutationPayload(() => stories.create(ctx, input)),
      updateStory: (_: unknown, { id, input }: { id: string; input: StoryInput }, ctx: SubgraphContext) => mutationPayload(() => stories.update(ctx, id, input)),
      publishStory: (_: unknown, { id }: { id: string }, ctx: SubgraphContext) => mutationPayload(() => stories.publish(ctx, id)),
      archiveStory: (_: unknown, { id }: { id: string }, ctx: SubgraphContext) => mutationPayload(() => stories.archive(ctx, id)),
      analyzeStory: (_: unknown, { id }: { id: string }, ctx: SubgraphContext) => mutationPayload(() => stories.analyze(ctx, id)),
    },
    Story: {
      // Other subgraphs hold story ids (a narration's story): the same rule applies through them.
      __resolveReference: ({ id }: { id: string }, ctx: SubgraphContext) => (isUuid(id) ? readable(ctx, id) : null),
      content: (story: Story, _: unknown, ctx: SubgraphContext) => story.content ?? contentById(ctx).load(story.id),
      customization: (story: Story) => ({ tone: story.tone, audience: story.audience, language: story.language }),
      author: (story: Story) => ({ __typename: 'User', id: story.authorId }),
      analysis: (story: Story, _: unknown, ctx: SubgraphContext) => analysisByStory(ctx).load(story.id),
      narrationAvailable: (story: Story, _: unknown, ctx: SubgraphContext) => hasVoice(ctx).load(story.authorId),
    },
    User: {
      stories: (user: { id: string }, args: PageArgs & { status?: StoryStatus | null }, ctx: SubgraphContext) =>
        storiesOfAuthor(ctx).load({ authorId: user.id, statuses: visibleStatuses(ctx, user.id, args.status), first: pageSize(args.first), after: timeIdCursor(args.after) }),
    },
  };
}
