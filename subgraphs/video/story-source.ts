import type { Caller } from '../../platform/internal-auth.js';
import { displayNameOf, querySubgraph } from '../../platform/subgraph/internal-query.js';
import type { Topology } from '../../platform/subgraph/module.js';

export interface StoryForVideo {
  id: string;
  title: string;
  content: string;
  authorId: string;
  genre: string | null;
  analysis: {
    summary: string | null;
    genre: string | null;
    characters: { name: string; description: string }[];
    emotions: { label: string; intensity: number }[];
  } | null;
}

export type StoryLookup = { story: StoryForVideo } | { refused: 'NOT_FOUND' | 'FORBIDDEN' };

const STORY_QUERY = `query VideoStory($id: ID!) {
  story(id: $id) {
    id title content genre author { id }
    analysis { status summary genre characters { name description } emotions { label intensity } }
  }
}`;

const NARRATION_QUERY = `query VideoNarration($reps: [_Any!]!) {
  _entities(representations: $reps) { ... on Story { narrations { status audioUrl audioContentType } } }
}`;

/**
 * What video needs from other domains, read with the job owner's identity so their rules hold:
 * the story and its analysis (story subgraph), the author's name (identity), and the story's
 * latest narration (narration), whose audio the local renderer lays under the video.
 */
export class StorySource {
  constructor(
    private readonly topology: Topology,
    private readonly internalSecret: string,
  ) {}

  async story(storyId: string, caller: Caller, correlationId?: string): Promise<StoryLookup> {
    const answer = await querySubgraph<{ story: (Omit<StoryForVideo, 'authorId' | 'analysis'> & { author: { id: string }; analysis: ({ status: string } & NonNullable<StoryForVideo['analysis']>) | null }) | null }>(
      this.topology,
      this.internalSecret,
      { subgraph: 'story', caller, correlationId, query: STORY_QUERY, variables: { id: storyId } },
    );
    const code = answer.errors[0]?.extensions?.code;
    if (code === 'FORBIDDEN' || code === 'UNAUTHENTICATED') return { refused: 'FORBIDDEN' };
    if (answer.errors.length) throw new Error(`the story subgraph failed: ${code ?? answer.errors[0]!.message}`);
    const story = answer.data?.story;
    if (!story) return { refused: 'NOT_FOUND' };
    const analysis = story.analysis?.status === 'COMPLETED' ? story.analysis : null;
    return {
      story: {
        id: story.id,
        title: story.title,
        content: story.content,
        authorId: story.author.id,
        genre: story.genre,
        analysis: analysis && { summary: analysis.summary, genre: analysis.genre, characters: analysis.characters, emotions: analysis.emotions },
      },
    };
  }

  /** The author's display name, or null when identity does not know it (a deleted account). */
  authorName(userId: string, caller: Caller, correlationId?: string): Promise<string | null> {
    return displayNameOf(this.topology, this.internalSecret, userId, caller, correlationId);
  }

  /** A signed link to the story's newest completed narration, or null. */
  async latestNarration(storyId: string, caller: Caller, options: { correlationId?: string; signal?: AbortSignal } = {}): Promise<{ url: string; contentType: string } | null> {
    const answer = await querySubgraph<{ _entities: ({ narrations?: { status: string; audioUrl: string | null; audioContentType: string | null }[] } | null)[] }>(
      this.topology,
      this.internalSecret,
      { subgraph: 'narration', caller, correlationId: options.correlationId, signal: options.signal, query: NARRATION_QUERY, variables: { reps: [{ __typename: 'Story', id: storyId }] } },
    );
    // Newest first (narration's order).
    const narration = answer.data?._entities[0]?.narrations?.find((n) => n.status === 'COMPLETED' && n.audioUrl);
    return narration ? { url: narration.audioUrl!, contentType: narration.audioContentType ?? 'audio/mpeg' } : null;
  }
}
