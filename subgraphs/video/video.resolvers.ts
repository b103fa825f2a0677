import { mutationPayload } from '../../platform/errors.js';
import { DateTime } from '../../platform/graphql/scalars.js';
import type { BlobStorage } from '../../platform/storage/storage.js';
import type { SubgraphContext } from '../../platform/subgraph/context.js';
import type { Resolvers } from '../../platform/subgraph/server.js';
import type { VideoAttempt, VideoJob } from './video.entities.js';
import { aspectEnumOf, enumOfProvider } from './video.rules.js';
import type { GenerateInput, VideoService } from './video.service.js';

const isOwner = (job: VideoJob, ctx: SubgraphContext) => ctx.caller.userId === job.userId;

/** How long a videoUrl stays valid once read. */
const VIDEO_URL_SECONDS = 3600;

export function videoResolvers(videos: VideoService, storage: BlobStorage): Resolvers {
  return {
    DateTime,
    Query: {
      videoJob: (_: unknown, { id }: { id: string }, ctx: SubgraphContext) => videos.job(ctx, id),
      videoProviders: () => videos.enabledProviders().map(enumOfProvider),
    },
    Mutation: {
      generateVideo: (_: unknown, { input }: { input: GenerateInput }, ctx: SubgraphContext) => mutationPayload(() => videos.generate(ctx, input)),
    },
    VideoJob: {
      __resolveReference: ({ id }: { id: string }, ctx: SubgraphContext) => videos.job(ctx, id),
      provider: (job: VideoJob) => (job.provider ? enumOfProvider(job.provider) : null),
      videoUrl: (job: VideoJob) =>
        job.status === 'COMPLETED' && job.videoKey ? storage.downloadUrl(job.videoKey, { expiresInSeconds: VIDEO_URL_SECONDS, filename: `storyloom-${job.id}.mp4` }) : null,
      prompt: (job: VideoJob) => job.source.prompt,
      aspectRatio: (job: VideoJob) => aspectEnumOf(job.aspectRatio),
      // How it was made is the owner's business: readers of a published story see its videos, not the providers' errors.
      attempts: (job: VideoJob, _: unknown, ctx: SubgraphContext) => (isOwner(job, ctx) ? videos.attempts(ctx, job.id) : []),
      error: (job: VideoJob, _: unknown, ctx: SubgraphContext) => (isOwner(job, ctx) ? job.error : null),
      story: (job: VideoJob) => ({ __typename: 'Story', id: job.storyId }),
    },
    VideoAttempt: {
      provider: (attempt: VideoAttempt) => enumOfProvider(attempt.provider),
    },
    Story: {
      videos: (story: { id: string }, _: unknown, ctx: SubgraphContext) => videos.videosOfStory(ctx, story.id),
    },
  };
}
