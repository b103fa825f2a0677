import { mutationPayload } from '../../platform/errors.js';
import { DateTime } from '../../platform/graphql/scalars.js';
import type { BlobStorage } from '../../platform/storage/storage.js';
import type { SubgraphContext } from '../../platform/subgraph/context.js';
import type { Resolvers } from '../../platform/subgraph/server.js';
import { NarrationJob, Voice, VoiceSample } from './narration.entities.js';
import { REQUIRED_SAMPLES, voiceStatus, type SampleKind } from './narration.rules.js';
import type { NarrateInput, NarrationService } from './narration.service.js';
import type { VoiceService } from './voice.service.js';

/** How long an audioUrl stays valid once read. */
const AUDIO_URL_SECONDS = 3600;

const samplesOf = (ctx: SubgraphContext) =>
  ctx.loader<string, VoiceSample[]>('samplesOfUser', async (userIds) => {
    const rows = await ctx.em.find(VoiceSample, { userId: { $in: [...userIds] } }, { orderBy: { createdAt: 'desc' } });
    return userIds.map((id) => rows.filter((s) => s.userId === id));
  });

const voiceOf = (ctx: SubgraphContext) =>
  ctx.loader<string, Voice | null>('voiceOfUser', async (userIds) => {
    const rows = await ctx.em.find(Voice, { userId: { $in: [...userIds] } });
    return userIds.map((id) => rows.find((v) => v.userId === id) ?? null);
  });

/** A story's narrations the caller may see: the completed ones, and all of their own. */
const narrationsOf = (ctx: SubgraphContext) =>
  ctx.loader<string, NarrationJob[]>('narrationsOfStory', async (storyIds) => {
    const rows = await ctx.em.find(
      NarrationJob,
      { storyId: { $in: [...storyIds] }, $or: [{ status: 'COMPLETED' }, ...(ctx.caller.userId ? [{ userId: ctx.caller.userId }] : [])] },
      { orderBy: { createdAt: 'desc' } },
    );
    return storyIds.map((id) => rows.filter((j) => j.storyId === id));
  });

export function narrationResolvers(voices: VoiceService, narrations: NarrationService, storage: BlobStorage): Resolvers {
  return {
    DateTime,
    Query: {
      narrationJob: (_: unknown, { id }: { id: string }, ctx: SubgraphContext) => narrations.job(ctx, id),
      stockVoices: () => narrations.stockVoices(),
    },
    Mutation: {
      createVoiceSampleUpload: (_: unknown, { input }: { input: { kind: SampleKind; label: string; contentType: string } }, ctx: SubgraphContext) =>
        mutationPayload(() => voices.createSampleUpload(ctx, input)),
      cloneVoice: (_: unknown, __: unknown, ctx: SubgraphContext) => mutationPayload(() => voices.clone(ctx)),
      narrateStory: (_: unknown, { input }: { input: NarrateInput }, ctx: SubgraphContext) => mutationPayload(() => narrations.narrate(ctx, input)),
    },
    User: {
      // Null for anyone else, so a list of users still resolves.
      voice: (user: { id: string }, _: unknown, ctx: SubgraphContext) => (ctx.caller.userId === user.id ? { userId: user.id } : null),
    },
    Voice: {
      status: async ({ userId }: { userId: string }, _: unknown, ctx: SubgraphContext) => {
        const [voice, samples] = await Promise.all([voiceOf(ctx).load(userId), samplesOf(ctx).load(userId)]);
        return voiceStatus(voice?.status ?? null, samples.filter((s) => s.uploadedAt).length);
      },
      sampleCount: async ({ userId }: { userId: string }, _: unknown, ctx: SubgraphContext) => (await samplesOf(ctx).load(userId)).filter((s) => s.uploadedAt).length,
      requiredSamples: () => REQUIRED_SAMPLES,
      samples: ({ userId }: { userId: string }, _: unknown, ctx: SubgraphContext) => samplesOf(ctx).load(userId),
      provider: async ({ userId }: { userId: string }, _: unknown, ctx: SubgraphContext) => (await voiceOf(ctx).load(userId))?.provider ?? null,
      clonedAt: async ({ userId }: { userId: string }, _: unknown, ctx: SubgraphContext) => (await voiceOf(ctx).load(userId))?.clonedAt ?? null,
      error: async ({ userId }: { userId: string }, _: unknown, ctx: SubgraphContext) => (await voiceOf(ctx).load(userId))?.error ?? null,
    },
    NarrationJob: {
      __resolveReference: ({ id }: { id: string }, ctx: SubgraphContext) => narrations.job(ctx, id),
      audioUrl: (job: NarrationJob) => (job.status === 'COMPLETED' && job.audioKey ? storage.downloadUrl(job.audioKey, { expiresInSeconds: AUDIO_URL_SECONDS }) : null),
      voice: (job: NarrationJob) => ({ kind: job.voiceKind, name: job.voiceKind === 'STOCK' ? job.stockVoice : 'cloned' }),
      story: (job: NarrationJob) => ({ __typename: 'Story', id: job.storyId }),
    },
    Story: {
      narrations: (story: { id: string }, _: unknown, ctx: SubgraphContext) => narrationsOf(ctx).load(story.id),
    },
  };
}
