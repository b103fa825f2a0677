/**
 * The operations the gateway bench sends, and what a correct answer to each looks like. They
 * are the apps' own operations (../shared/clients, through scripts/client-operations.ts) where
 * one fits, adapted where the bench needs more of the graph, and all answer anonymously: both
 * gateways then sign the same caller, and neither verifies a token.
 */
import { Kind, parse, print, visit, type FieldNode, type OperationDefinitionNode, type SelectionNode } from 'graphql';

export type OperationKey = 'feed' | 'story' | 'deep' | 'feed-story';

export interface BenchOperation {
  key: OperationKey;
  /** What it is, for the table's legend. */
  title: string;
  query: string;
  variables: Record<string, unknown>;
  /** What is wrong with a response's `data`, or null when it is the expected shape. */
  check(data: any): string | null;
  /** The same request, sent straight to one subgraph: the gateway's overhead is measured against it. */
  direct?: { subgraph: string };
}

export interface OperationInputs {
  /** A published story with a completed analysis and a completed narration. */
  storyId: string;
  /** How many stories publishedStories lists (`first`): the feed's page. */
  feedSize: number;
}

export async function benchOperations(inputs: OperationInputs): Promise<Record<OperationKey, BenchOperation>> {
  // Loaded when needed: the module reads every subgraph's schema module, seconds of start-up.
  const { loadClientOperations } = await import('../scripts/client-operations.js');
  const client = new Map(loadClientOperations().map((op) => [op.name, op]));
  const clientOp = (name: string) => {
    const op = client.get(name);
    if (!op) throw new Error(`no client operation ${name} in ../shared/clients`);
    return op.document;
  };
  const feed = clientOp('PublishedStories');
  const page = inputs.feedSize;
  return {
    feed: {
      key: 'feed',
      title: `PublishedStories (story.graphql) first ${page}, each author also with membership { plan } (billing), plus plans (billing)`,
      // The apps' feed crosses story and identity only; the bench wants billing in it too, as a
      // nested entity hop (membership: null for an anonymous caller, but billing is asked) and
      // as a second root field fetched beside the feed.
      query: print(
        visit(feed, {
          OperationDefinition: (node) => renamed(withSelections(node, 'plans { tier name priceCents currency storiesPerMonth }'), 'PublishedStoriesWithPlans'),
          Field: (node) => (node.name.value === 'author' ? withSelections(node, 'membership { status plan { tier name } }') : undefined),
        }),
      ),
      variables: { first: page },
      check: (data) =>
        firstProblem([
          edgesOf(data?.publishedStories).length === page || `publishedStories has ${edgesOf(data?.publishedStories).length} edges, wanted ${page}`,
          edgesOf(data?.publishedStories).every((e) => typeof e.node?.author?.displayName === 'string') || 'a story without its author (identity)',
          edgesOf(data?.publishedStories).every((e) => e.node?.author && 'membership' in e.node.author) || 'an author without membership (billing)',
          (Array.isArray(data?.plans) && data.plans.length >= 4) || 'plans (billing) missing',
        ]),
    },
    story: {
      key: 'story',
      title: 'Story (story.graphql) as is: author (identity) with membership (billing), analysis, narrations (narration)',
      query: print(clientOp('Story')),
      variables: { id: inputs.storyId },
      check: (data) => {
        const story = data?.story;
        return firstProblem([
          story?.status === 'PUBLISHED' || `story is ${story?.status ?? 'missing'}`,
          typeof story?.author?.displayName === 'string' || 'the author (identity) is missing',
          story?.analysis?.status === 'COMPLETED' || `analysis is ${story?.analysis?.status ?? 'missing'}`,
          (story?.analysis?.characters?.length ?? 0) > 0 || 'the analysis found no characters',
          (story?.narrations?.length ?? 0) > 0 || 'no narration (narration)',
          story?.narrations?.every((n: any) => n.status === 'COMPLETED' && typeof n.voice?.name === 'string') || 'a narration not COMPLETED',
        ]);
      },
    },
    deep: {
      key: 'deep',
      title: 'DeepNested (after graphql-gateways-benchmark): stories -> authors -> their stories -> narrations -> story -> author -> stories -> narrations -> story -> author, plus plans',
      query: DEEP_NESTED,
      variables: {},
      check: (data) => {
        const top = edgesOf(data?.publishedStories);
        const level2 = top.flatMap((e) => edgesOf(e.node?.author?.stories));
        const narrations2 = level2.flatMap((e) => e.node?.narrations ?? []);
        const level4 = narrations2.flatMap((n) => edgesOf(n.story?.author?.stories));
        const narrations4 = level4.flatMap((e) => e.node?.narrations ?? []);
        return firstProblem([
          top.length === 10 || `publishedStories has ${top.length} edges, wanted 10`,
          level2.length >= 20 || `only ${level2.length} stories of the authors`,
          narrations2.length > 0 || 'no narrations at the second level',
          level4.length > 0 || 'nothing at the fourth level (narration -> story -> author -> stories)',
          narrations4.length > 0 || 'no narrations at the fourth level',
          narrations4.every((n) => typeof n.story?.author?.displayName === 'string') || 'a deepest author (identity) is missing',
        ]);
      },
    },
    'feed-story': {
      key: 'feed-story',
      title: `PublishedStories (story.graphql) first ${page} without author: one subgraph (story), also sent to it directly`,
      query: print(
        visit(feed, {
          OperationDefinition: (node) => renamed(node, 'PublishedStoriesStoryOnly'),
          Field: (node) => (node.name.value === 'author' ? null : undefined),
        }),
      ),
      variables: { first: page },
      check: (data) => (edgesOf(data?.publishedStories).length === page ? null : `publishedStories has ${edgesOf(data?.publishedStories).length} edges, wanted ${page}`),
      direct: { subgraph: 'story' },
    },
  };
}

/**
 * The deep query of github.com/graphql-hive/graphql-gateways-benchmark (users -> reviews ->
 * product -> reviews -> author -> reviews -> …, back and forth between subgraphs) on our schema:
 * every level below is a fetch of its own, to the subgraph named, after the one above it.
 * The story subgraph answers a story's author's stories itself (it owns Story.author and
 * User.stories); identity adds the names, narration the narrations, billing the memberships.
 * `first: 3` (each member has 3 stories) keeps it under the gateway's default cost limit
 * (LIMIT_MAX_COST, 50,000: 5 would cost ~50,700) with the same answer.
 */
export const DEEP_NESTED = /* GraphQL */ `
  query DeepNested {
    publishedStories(first: 10) {
      edges {
        node {
          id
          title
          genre
          author {
            id
            displayName
            avatarUrl
            membership { plan { tier } }
            stories(first: 3) {
              edges {
                node {
                  id
                  title
                  wordCount
                  narrations {
                    id
                    status
                    durationMs
                    voice { kind name }
                    story {
                      id
                      title
                      author {
                        id
                        displayName
                        stories(first: 3) {
                          edges {
                            node {
                              id
                              title
                              narrations {
                                id
                                status
                                story { id title author { id displayName } }
                              }
                            }
                          }
                        }
                      }
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
    plans { tier name priceCents }
  }
`;

/** The depth graphql-armor's max-depth counts (fields nested in fields), for the gateway's limit. */
export function depthOf(query: string): number {
  const depth = (selections: readonly SelectionNode[] | undefined): number =>
    Math.max(0, ...(selections ?? []).map((s) => (s.kind === Kind.FIELD ? 1 + depth(s.selectionSet?.selections) : depth(s.kind === Kind.INLINE_FRAGMENT ? s.selectionSet.selections : []))));
  return Math.max(...parse(query).definitions.map((d) => (d.kind === Kind.OPERATION_DEFINITION ? depth(d.selectionSet.selections) : 0)));
}

function withSelections<T extends OperationDefinitionNode | FieldNode>(node: T, selections: string): T {
  const added = (parse(`{ ${selections} }`).definitions[0] as OperationDefinitionNode).selectionSet.selections;
  return { ...node, selectionSet: { kind: Kind.SELECTION_SET, selections: [...(node.selectionSet?.selections ?? []), ...added] } };
}

function renamed(node: OperationDefinitionNode, name: string): OperationDefinitionNode {
  return { ...node, name: { kind: Kind.NAME, value: name } };
}

function edgesOf(connection: any): any[] {
  return Array.isArray(connection?.edges) ? connection.edges : [];
}

function firstProblem(checks: (true | string)[]): string | null {
  return checks.find((c): c is string => c !== true) ?? null;
}
