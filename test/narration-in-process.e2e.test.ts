import { randomUUID } from 'node:crypto';
import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, expect, it } from 'vitest';
import WebSocket from 'ws';
import { clientOperation } from './support/clients.js';
import { startTestStack, type TestStack } from './support/stack.js';

/** The same subscription path on the all-in-one defaults: an in-process live bus and job queue. */
let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack({ inProcessLiveAndJobs: true });
});
afterAll(async () => {
  await stack?.close();
});

it('follows a narration to COMPLETED with the in-process live bus and job queue', async () => {
  expect(stack.app.live.kind).toBe('IN_PROCESS');
  const registered = await stack.gql(clientOperation('Register'), { input: { email: `ip-${randomUUID().slice(0, 8)}@example.com`, password: 'correct horse battery', displayName: 'Ines' } });
  const token: string = registered.data.register.session.accessToken;
  const story = (await stack.gql(clientOperation('CreateStory'), { input: { title: 'In process', content: 'A story read in one process. '.repeat(40) } }, { token })).data.createStory.story;
  const job = (await stack.gql(clientOperation('NarrateStory'), { input: { storyId: story.id, voice: 'STOCK', stockVoice: 'alloy' } }, { token })).data.narrateStory.job;
  const client = createClient({ url: stack.app.gatewayUrl.replace(/^http/, 'ws'), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
  const received: any[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      client.subscribe({ query: clientOperation('NarrationProgress'), variables: { jobId: job.id } }, { next: (v) => received.push(v), error: reject, complete: resolve });
    });
  } finally {
    await client.dispose();
  }
  expect(received.at(-1).data.narrationJobUpdated).toMatchObject({ status: 'COMPLETED', progress: 1, story: { title: 'In process', author: { displayName: 'Ines' } } });
  expect((await fetch(received.at(-1).data.narrationJobUpdated.audioUrl)).status).toBe(200);
  expect(stack.app.live.subscriptionCount()).toBe(0);
});
