import { randomUUID } from 'node:crypto';
import type { Caller } from '../../platform/internal-auth.js';
import { querySubgraph } from '../../platform/subgraph/internal-query.js';
import type { Topology } from '../../platform/subgraph/module.js';

export interface StoryText {
  id: string;
  title: string;
  content: string;
  authorId: string;
}

export type StoryLookup = { story: StoryText } | { refused: 'NOT_FOUND' | 'FORBIDDEN' };

/**
 * Reads a story from the story subgraph, as a given user: a signed internal request, so the
 * story subgraph applies its own rule (a draft is its author's alone). A story's text is
 * too large for events, and narration needs it only when a job starts.
 */
export class StoryReader {
  constructor(
    private readonly topology: Topology,
    private readonly internalSecret: string,
  ) {}

  async read(storyId: string, caller: Caller, correlationId: string = randomUUID()): Promise<StoryLookup> {
    const answer = await querySubgraph<{ story: { id: string; title: string; content: string; author: { id: string } } | null }>(this.topology, this.internalSecret, {
      subgraph: 'story',
      caller,
      correlationId,
      query: 'query NarrationStory($id: ID!) { story(id: $id) { id title content author { id } } }',
      variables: { id: storyId },
    });
    const code = answer.errors[0]?.extensions?.code;
    if (code === 'FORBIDDEN' || code === 'UNAUTHENTICATED') return { refused: 'FORBIDDEN' };
    if (answer.errors.length) throw new Error(`the story subgraph failed: ${code ?? 'unknown error'}`);
    const story = answer.data?.story;
    if (!story) return { refused: 'NOT_FOUND' };
    return { story: { id: story.id, title: story.title, content: story.content, authorId: story.author.id } };
  }
}
