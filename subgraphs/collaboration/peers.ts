import type { Caller } from '../../platform/internal-auth.js';
import { displayNameOf, querySubgraph } from '../../platform/subgraph/internal-query.js';
import type { Topology } from '../../platform/subgraph/module.js';

export interface StoryForRoleplay {
  id: string;
  title: string;
  status: string;
  authorId: string;
  characters: { name: string; description: string }[];
}

const STORY_QUERY = `query RoleplayStory($id: ID!) {
  story(id: $id) { id title status author { id } analysis { status characters { name description } } }
}`;

const ISSUE_GUEST = `mutation IssueGuest($participantId: ID!, $templateId: ID!) {
  issueGuestSession(participantId: $participantId, templateId: $templateId) { accessToken accessTokenExpiresAt }
}`;

/** A subgraph calling for itself, never for a user: identity issues guest sessions only to it. */
const SERVICE: Caller = { userId: null, roles: ['SERVICE'] };

/**
 * What collaboration asks of other subgraphs, with signed internal requests: a story and its
 * analysed characters (story, as the caller), a user's display name (identity, as that user),
 * and a guest session (identity, as the service).
 */
export class Peers {
  constructor(
    private readonly topology: Topology,
    private readonly internalSecret: string,
  ) {}

  /** The story as the caller may read it; null when there is none (or it is not theirs to read). */
  async story(storyId: string, caller: Caller, correlationId: string): Promise<StoryForRoleplay | null> {
    type Answer = { story: { id: string; title: string; status: string; author: { id: string }; analysis: { status: string; characters: { name: string; description: string }[] } | null } | null };
    const answer = await querySubgraph<Answer>(this.topology, this.internalSecret, { subgraph: 'story', caller, correlationId, query: STORY_QUERY, variables: { id: storyId } });
    const code = answer.errors[0]?.extensions?.code;
    if (code === 'FORBIDDEN' || code === 'NOT_FOUND') return null;
    if (answer.errors.length) throw new Error(`the story subgraph failed: ${code ?? answer.errors[0]!.message}`);
    const story = answer.data?.story;
    if (!story) return null;
    const characters = story.analysis?.status === 'COMPLETED' ? story.analysis.characters : [];
    return { id: story.id, title: story.title, status: story.status, authorId: story.author.id, characters };
  }

  displayName(userId: string, correlationId: string): Promise<string | null> {
    return displayNameOf(this.topology, this.internalSecret, userId, { userId, roles: ['USER'] }, correlationId);
  }

  async guestSession(participantId: string, templateId: string, correlationId: string): Promise<{ accessToken: string; accessTokenExpiresAt: string }> {
    const answer = await querySubgraph<{ issueGuestSession: { accessToken: string; accessTokenExpiresAt: string } }>(this.topology, this.internalSecret, {
      subgraph: 'identity',
      caller: SERVICE,
      correlationId,
      query: ISSUE_GUEST,
      variables: { participantId, templateId },
    });
    const session = answer.data?.issueGuestSession;
    if (!session) throw new Error(`identity issued no guest session: ${answer.errors[0]?.message ?? 'no answer'}`);
    return session;
  }
}
