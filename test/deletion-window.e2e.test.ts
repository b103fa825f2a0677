import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { clientOperation } from './support/clients.js';
import { registerMember, TALE } from './support/people.js';
import { startTestStack, type TestStack } from './support/stack.js';

/**
 * While an author's deletion runs, the other subgraphs still hold references to them until
 * their own steps are done: here story is kept from archiving the author's stories (its
 * consumer stopped), and the public feed must still answer, the author shown as a former user.
 */
let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack();
});
afterAll(async () => {
  await stack?.close();
});

describe('an account being deleted, seen from other subgraphs', () => {
  it('appears as a former user (no name, picture or address) until the steps holding it are done', async () => {
    const author = await registerMember(stack, 'Wren');
    const reader = await registerMember(stack, 'Rue');
    const created = await stack.gql(clientOperation('CreateStory'), { input: { title: 'The Last Light', content: TALE } }, { token: author.token });
    const storyId = created.data.createStory.story.id as string;
    expect((await stack.gql(clientOperation('PublishStory'), { id: storyId }, { token: author.token })).data.publishStory.userErrors).toEqual([]);

    const story = stack.app.subgraphs.find((subgraph) => subgraph.name === 'story')!;
    const storyConsumer = story.consumers.find((consumer) => consumer.name === 'story')!;
    await storyConsumer.stop();
    expect((await stack.gql(clientOperation('DeleteAccount'), {}, { token: author.token })).data.deleteAccount.userErrors).toEqual([]);

    const feed = await stack.gql(clientOperation('PublishedStories'), { first: 50 }, { token: reader.token });
    expect(feed.errors).toBeUndefined();
    const listed = feed.data.publishedStories.edges.find((edge: { node: { id: string } }) => edge.node.id === storyId);
    expect(listed.node.author).toEqual({ id: author.id, displayName: 'Former user', avatarUrl: null });
    const read = await stack.gql(`query($id: ID!) { story(id: $id) { author { id displayName email role } } }`, { id: storyId }, { token: reader.token });
    expect(read.errors).toBeUndefined();
    expect(read.data.story.author).toEqual({ id: author.id, displayName: 'Former user', email: null, role: 'USER' });

    // Story's step done, the story is archived and leaves the feed.
    await storyConsumer.start();
    await vi.waitFor(
      async () => {
        const after = await stack.gql(clientOperation('PublishedStories'), { first: 50 }, { token: reader.token });
        expect(after.data.publishedStories.edges.map((edge: { node: { id: string } }) => edge.node.id)).not.toContain(storyId);
      },
      { timeout: 15_000, interval: 100 },
    );
  });
});
