import { randomUUID } from 'node:crypto';
import { signCaller, type Caller } from '../../platform/internal-auth.js';
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
    const url = this.topology.subgraphs().find((s) => s.name === 'story')?.url;
    if (!url) throw new Error('the story subgraph is not reachable (not in the topology)');
    const operation = { query: 'query NarrationStory($id: ID!) { story(id: $id) { id title content author { id } } }', variables: { id: storyId } };
    const headers = signCaller(this.internalSecret, { audience: 'story', caller, correlationId, operation });
    const response = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(operation),
      signal: AbortSignal.timeout(10_000),
    });
    if (!response.ok) throw new Error(`the story subgraph answered ${response.status}`);
    const body = (await response.json()) as {
      data?: { story: { id: string; title: string; content: string; author: { id: string } } | null } | null;
      errors?: { extensions?: { code?: string } }[];
    };
    const code = body.errors?.[0]?.extensions?.code;
    if (code === 'FORBIDDEN' || code === 'UNAUTHENTICATED') return { refused: 'FORBIDDEN' };
    if (body.errors?.length) throw new Error(`the story subgraph failed: ${code ?? 'unknown error'}`);
    const story = body.data?.story;
    if (!story) return { refused: 'NOT_FOUND' };
    return { story: { id: story.id, title: story.title, content: story.content, authorId: story.author.id } };
  }
}
