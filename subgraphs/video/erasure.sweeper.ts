import type { MikroORM } from '@mikro-orm/postgresql';
import { ErasureSweeper } from '../../platform/erasure/sweeper.js';
import type { Logger } from '../../platform/log.js';
import type { BlobStorage } from '../../platform/storage/storage.js';
import type { VideoProvider, VideoProviderName } from './providers/provider.js';
import { ErasureCleanup } from './video.entities.js';

/**
 * Video's ErasureSweeper (platform/erasure/sweeper.ts): it deletes the stored videos, and asks
 * providers to cancel the tasks the erased jobs made (best effort: a provider may finish, and
 * bill, a task it was asked to stop; Runway and Luma delete a finished one).
 */
export function videoErasureSweeper(options: {
  orm: MikroORM;
  storage: BlobStorage;
  /** Every provider this process can call, by name (the worker's). */
  providers: ReadonlyMap<VideoProviderName, VideoProvider>;
  logger: Logger;
  everyMs?: number;
}): ErasureSweeper<ErasureCleanup> {
  const { providers, ...rest } = options;
  return new ErasureSweeper({
    ...rest,
    step: 'video',
    entity: ErasureCleanup,
    providerWork: {
      PROVIDER_TASK: {
        async perform(row, { signal, log }) {
          const provider = row.provider ? providers.get(row.provider) : undefined;
          // A provider without a cancel (or no longer configured here) lets its task run out on its own.
          if (!provider?.cancel || !row.task) return;
          await provider.cancel(row.task, { signal });
          log.debug({ provider: provider.name, taskId: row.task.id }, 'cancelled the provider task of an erased video');
        },
        // About an hour and a half of waits: a running task ends by itself within its provider's
        // time limit, and a finished one's video with the provider's retention.
        maxAttempts: 10,
        givenUp: { level: 'warn', message: 'gave up cancelling the task of an erased video; it ends at its provider by itself' },
      },
    },
  });
}
