import type { SubgraphModule } from '../../platform/subgraph/module.js';
import { analyserFor } from './analysis/select.js';
import { AnalysisWorker } from './analysis.worker.js';
import { storyMigrations } from './migrations/index.js';
import { projectionsConsumer, storyConsumer } from './story.consumer.js';
import { storyEntities } from './story.entities.js';
import { storyResolvers } from './story.resolvers.js';
import { StoryService } from './story.service.js';

/** Stories: writing, publishing, plan limits from billing's entitlements, and AI analysis in the background. */
export const story: SubgraphModule = {
  name: 'story',
  entities: storyEntities,
  migrations: storyMigrations,
  build({ config, orm, logger, onEventsCommitted }) {
    const worker = new AnalysisWorker({
      orm,
      analyser: analyserFor(config),
      logger,
      concurrency: config.STORY_ANALYSIS_CONCURRENCY,
      pollMs: config.STORY_ANALYSIS_POLL_MS,
      leaseMs: config.STORY_ANALYSIS_LEASE_MS,
      maxAttempts: 3,
      onEventsCommitted,
    });
    return {
      resolvers: storyResolvers(new StoryService(() => worker.wake())),
      consumers: [storyConsumer, projectionsConsumer],
      start: async () => worker.start(),
      stop: () => worker.stop(),
    };
  },
};
