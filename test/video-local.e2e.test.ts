import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { clientOperation } from './support/clients.js';
import { probe } from './support/probe.js';
import { analysedStory, registerMember } from './support/people.js';
import { startTestStack, type TestStack } from './support/stack.js';
import { follow, wsClients } from './support/subscriptions.js';

/**
 * Video with no keys at all, as `npm start` runs it: the local provider renders title cards of
 * the story and its characters with ffmpeg, under the story's narration when it has one.
 */
const op = {
  narrate: clientOperation('NarrateStory'),
  narrationJob: clientOperation('NarrationJob'),
  generate: clientOperation('GenerateVideo'),
  job: clientOperation('VideoJob'),
  progress: clientOperation('VideoProgress'),
};

let stack: TestStack;
const ws = wsClients(() => stack.app.gatewayUrl);

beforeAll(async () => {
  stack = await startTestStack({ env: { LOCAL_VIDEO_POLL_INTERVAL_MS: '50' } });
});

afterAll(async () => {
  await ws.disposeAll();
  await stack?.close();
});

/** Generates a video and follows it over graphql-ws to its end; returns the last delivery. */
async function videoOf(token: string, storyId: string) {
  const res = await stack.gql(op.generate, { input: { storyId, style: 'paper cut-outs' } }, { token });
  expect(res.data.generateVideo.userErrors).toEqual([]);
  const followed = follow(ws.client(token), op.progress, { jobId: res.data.generateVideo.job.id });
  await followed.done;
  expect(followed.error()).toBeNull();
  const received = followed.received;
  return { states: received.map((r) => r.data.videoJobUpdated.status as string), last: received.at(-1).data.videoJobUpdated };
}

async function download(url: string) {
  const response = await fetch(url);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toBe('video/mp4');
  return Buffer.from(await response.arrayBuffer());
}

describe('the local video provider', () => {
  it('renders title cards of the story into a real MP4, through the gateway, with no keys', async () => {
    const ada = await registerMember(stack, 'Ada');
    const storyId = await analysedStory(stack, ada.token, 'The Lighthouse');
    expect((await stack.gql(`{ videoProviders }`, {}, { token: ada.token })).data.videoProviders).toEqual(['LOCAL']);
    const { states, last } = await videoOf(ada.token, storyId);
    // The local renderer is quick: the worker may have the job before the subscription's first fetch.
    expect(['QUEUED', 'RUNNING']).toContain(states[0]);
    expect(states.at(-1)).toBe('COMPLETED');
    expect(last).toMatchObject({ provider: 'LOCAL', attempts: [{ provider: 'LOCAL', status: 'SUCCEEDED', error: null }], story: { title: 'The Lighthouse' } });
    const info = probe(await download(last.videoUrl));
    expect(info.streams).toEqual(expect.arrayContaining(['Video', 'Audio']));
    expect(info.seconds).toBeGreaterThan(2);
  });

  it('lays the story\'s narration under the video, which lasts as long as it', async () => {
    const bo = await registerMember(stack, 'Bo');
    const storyId = await analysedStory(stack, bo.token, 'Read Aloud');
    const narration = (await stack.gql(op.narrate, { input: { storyId, voice: 'STOCK', stockVoice: 'alloy' } }, { token: bo.token })).data.narrateStory.job;
    const narrated = await vi.waitFor(
      async () => {
        const job = (await stack.gql(op.narrationJob, { id: narration.id }, { token: bo.token })).data.narrationJob;
        expect(job.status).toBe('COMPLETED');
        return job;
      },
      { timeout: 15_000, interval: 50 },
    );
    const audio = await fetch(narrated.audioUrl);
    const narrationSeconds = probe(Buffer.from(await audio.arrayBuffer())).seconds;
    expect(narrationSeconds).toBeGreaterThan(3);
    const { last } = await videoOf(bo.token, storyId);
    expect(last.status).toBe('COMPLETED');
    const info = probe(await download(last.videoUrl));
    expect(info.streams).toEqual(expect.arrayContaining(['Video', 'Audio']));
    expect(Math.abs(info.seconds - narrationSeconds)).toBeLessThan(1);
  });
});
