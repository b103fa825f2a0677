import { randomUUID } from 'node:crypto';
import { expect, vi } from 'vitest';
import { clientOperation } from './clients.js';
import type { TestStack } from './stack.js';

/** What these helpers need of a stack: its GraphQL endpoint (all-in-one or distributed). */
type Client = Pick<TestStack, 'gql'>;

const register = clientOperation('Register');
const createStory = clientOperation('CreateStory');
const analyzeStory = clientOperation('AnalyzeStory');

/** A new account (Register), with a unique address: its id and access token. */
export async function registerMember(stack: Client, name: string): Promise<{ id: string; token: string }> {
  const res = await stack.gql(register, { input: { email: `${name}-${randomUUID().slice(0, 8)}@example.com`, password: 'correct horse battery', displayName: name } });
  expect(res.data.register.userErrors).toEqual([]);
  return { id: res.data.register.user.id as string, token: res.data.register.session.accessToken as string };
}

/** A story whose two characters the local analyser finds: Mira and Old Tom. */
export const TALE = [
  'Mira kept the lighthouse on the northern cape. Every night Mira climbed the hundred steps and lit the lamp.',
  'Old Tom, the ferryman, brought her bread and news. Old Tom laughed at storms; Mira feared them.',
  'One winter night the lamp went dark, and Mira and Old Tom rowed out together to save a lost ship.',
].join('\n\n');

/** Waits until the story's analysis is COMPLETED. */
export async function analysisCompleted(stack: Client, token: string, storyId: string): Promise<void> {
  await vi.waitFor(
    async () => expect((await stack.gql(`query($id: ID!) { story(id: $id) { analysis { status } } }`, { id: storyId }, { token })).data.story.analysis?.status).toBe('COMPLETED'),
    { timeout: 10_000, interval: 50 },
  );
}

/** A draft of the member's (AnalyzeStory), analysed by the local analyser. */
export async function analysedStory(stack: Client, token: string, title: string, content = TALE): Promise<string> {
  const story = (await stack.gql(createStory, { input: { title, content } }, { token })).data.createStory.story;
  expect((await stack.gql(analyzeStory, { id: story.id }, { token })).data.analyzeStory.userErrors).toEqual([]);
  await analysisCompleted(stack, token, story.id);
  return story.id as string;
}
