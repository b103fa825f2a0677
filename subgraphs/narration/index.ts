import { join } from 'node:path';
import { hkdfSync } from 'node:crypto';
import type { Config } from '../../platform/config.js';
import type { SubgraphModule, Topology } from '../../platform/subgraph/module.js';
import { LocalDiskStorage } from '../../platform/storage/local.js';
import { S3Storage } from '../../platform/storage/s3.js';
import type { BlobStorage } from '../../platform/storage/storage.js';
import { FILES_PATH, filesRoute, UPLOADS_PATH, uploadRoute } from './media.routes.js';
import { narrationMigrations } from './migrations/index.js';
import { narrationEntities } from './narration.entities.js';
import { narrationResolvers } from './narration.resolvers.js';
import { NarrationService } from './narration.service.js';
import { NarrationWorker } from './narration.worker.js';
import { narrationProvidersFor } from './providers/select.js';
import { StoryReader } from './story-reader.js';
import { VoiceService } from './voice.service.js';

/** Where clients reach this subgraph's media routes: through the gateway. */
const mediaBaseUrl = (topology: Topology) => () => `${topology.publicUrl()}/media/narration`;

/** A key of its own for media links, derived from the internal secret: no other secret to manage. */
const mediaSecret = (config: Config) => Buffer.from(hkdfSync('sha256', config.INTERNAL_SECRET, 'storyloom', 'media-links', 32)).toString('base64url');

function storageFor(config: Config, topology: Topology): BlobStorage {
  if (config.STORAGE_DRIVER === 's3') {
    return new S3Storage({
      bucket: config.S3_BUCKET!,
      region: config.S3_REGION,
      endpoint: config.S3_ENDPOINT,
      forcePathStyle: config.S3_FORCE_PATH_STYLE,
      accessKeyId: config.S3_ACCESS_KEY_ID,
      secretAccessKey: config.S3_SECRET_ACCESS_KEY,
      keyPrefix: 'narration/',
    });
  }
  return new LocalDiskStorage({ root: config.STORAGE_DIR ?? join(config.DATA_DIR, 'blobs', 'narration'), publicBaseUrl: mediaBaseUrl(topology), secret: mediaSecret(config) });
}

/** Narration: voice samples and cloning, and stories read aloud by workers on a job queue. */
export const narration: SubgraphModule = {
  name: 'narration',
  entities: narrationEntities,
  migrations: narrationMigrations,
  build({ config, orm, jobs, live, logger, topology, onEventsCommitted }) {
    const storage = storageFor(config, topology);
    const providers = narrationProvidersFor(config);
    const stories = new StoryReader(topology, config.INTERNAL_SECRET);
    const secret = mediaSecret(config);
    const voices = new VoiceService({ storage, cloner: providers.cloner, secret, uploadBaseUrl: () => `${mediaBaseUrl(topology)()}${UPLOADS_PATH.slice('/media'.length)}`, maxSampleBytes: config.VOICE_SAMPLE_MAX_BYTES, logger });
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
    const files = filesRoute(storage);
    return {
      resolvers: narrationResolvers(voices, narrations, storage),
      routes: { [UPLOADS_PATH]: uploadRoute({ orm, storage, secret, logger }), ...(files ? { [FILES_PATH]: files } : {}) },
      start: () => worker.start(),
      stop: () => worker.stop(),
    };
  },
};
