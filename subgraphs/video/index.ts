import { FILES_PATH, filesRoute, storageFor } from '../../platform/storage/select.js';
import type { SubgraphModule } from '../../platform/subgraph/module.js';
import { erasureConsumer } from './erasure.consumer.js';
import { videoErasureSweeper } from './erasure.sweeper.js';
import { videoMigrations } from './migrations/index.js';
import { videoProvidersFor } from './providers/select.js';
import { StorySource } from './story-source.js';
import { projectionsConsumer } from './video.consumer.js';
import { videoEntities } from './video.entities.js';
import { videoResolvers } from './video.resolvers.js';
import { VideoService } from './video.service.js';
import { VideoWorker } from './video.worker.js';

/**
 * Video: stories made into short films by the enabled providers, with fallback, by workers on a
 * job queue. A step of the user deletion saga: erasure.consumer.ts, then the ErasureSweeper for
 * stored videos and provider tasks.
 */
export const video: SubgraphModule = {
  name: 'video',
  entities: videoEntities,
  migrations: videoMigrations,
  build({ config, orm, jobs, live, logger, topology, onEventsCommitted }) {
    const storage = storageFor(config, topology, 'video');
    const providers = videoProvidersFor(config);
    const stories = new StorySource(topology, config.INTERNAL_SECRET);
    const videos = new VideoService({ stories, jobs, providers: providers.enabled, durationSeconds: config.VIDEO_DURATION_SECONDS });
    const worker = new VideoWorker({
      orm,
      jobs,
      live,
      storage,
      stories,
      providers: providers.all,
      concurrency: config.VIDEO_CONCURRENCY,
      ackWaitMs: config.VIDEO_ACK_WAIT_MS,
      maxBytes: config.VIDEO_MAX_BYTES,
      logger,
      onEventsCommitted,
    });
    const sweeper = videoErasureSweeper({ orm, storage, providers: providers.all, logger });
    const files = filesRoute(storage);
    return {
      resolvers: videoResolvers(videos, storage),
      routes: files ? { [FILES_PATH]: files } : undefined,
      consumers: [projectionsConsumer, erasureConsumer],
      async start() {
        await worker.start();
        sweeper.start();
      },
      async stop() {
        await sweeper.stop();
        await worker.stop();
        // The local renderer kills its ffmpeg processes; their tasks resume at the next start.
        for (const provider of providers.all.values()) await provider.close?.();
      },
    };
  },
};
