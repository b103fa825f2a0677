import { FILES_PATH, filesRoute, mediaBaseUrl, mediaSecret, storageFor } from '../../platform/storage/select.js';
import type { SubgraphModule } from '../../platform/subgraph/module.js';
import { erasureConsumer } from './erasure.consumer.js';
import { narrationErasureSweeper } from './erasure.sweeper.js';
import { UPLOADS_PATH, uploadRoute } from './media.routes.js';
import { narrationMigrations } from './migrations/index.js';
import { narrationEntities } from './narration.entities.js';
import { narrationResolvers } from './narration.resolvers.js';
import { NarrationService } from './narration.service.js';
import { NarrationWorker } from './narration.worker.js';
import { narrationProvidersFor } from './providers/select.js';
import { StoryReader } from './story-reader.js';
import { VoiceService } from './voice.service.js';

/**
 * Narration: voice samples and cloning, and stories read aloud by workers on a job queue. A step
 * of the user deletion saga: erasure.consumer.ts, then the ErasureSweeper for files and voices.
 */
export const narration: SubgraphModule = {
  name: 'narration',
  entities: narrationEntities,
  migrations: narrationMigrations,
  build({ config, orm, jobs, live, logger, topology, onEventsCommitted }) {
    const storage = storageFor(config, topology, 'narration');
    const providers = narrationProvidersFor(config);
    const stories = new StoryReader(topology, config.INTERNAL_SECRET);
    const secret = mediaSecret(config);
    const voices = new VoiceService({ storage, cloner: providers.cloner, secret, uploadBaseUrl: () => `${mediaBaseUrl(topology, 'narration')()}${UPLOADS_PATH.slice('/media'.length)}`, maxSampleBytes: config.VOICE_SAMPLE_MAX_BYTES, logger });
    const narrations = new NarrationService({ stories, jobs, stockSpeech: providers.stockSpeech });
    const worker = new NarrationWorker({
      orm,
      jobs,
      live,
      storage,
      stories,
      ...providers,
      concurrency: config.NARRATION_CONCURRENCY,
      ackWaitMs: config.NARRATION_ACK_WAIT_MS,
      logger,
      onEventsCommitted,
    });
    const sweeper = narrationErasureSweeper({ orm, storage, cloner: providers.cloner, logger });
    const files = filesRoute(storage);
    return {
      resolvers: narrationResolvers(voices, narrations, storage),
      routes: { [UPLOADS_PATH]: uploadRoute({ orm, storage, secret, logger }), ...(files ? { [FILES_PATH]: files } : {}) },
      consumers: [erasureConsumer],
      async start() {
        await worker.start();
        sweeper.start();
      },
      async stop() {
        await sweeper.stop();
        await worker.stop();
      },
    };
  },
};
