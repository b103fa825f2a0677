import type { MikroORM } from '@mikro-orm/postgresql';
import { ErasureSweeper } from '../../platform/erasure/sweeper.js';
import type { Logger } from '../../platform/log.js';
import type { BlobStorage } from '../../platform/storage/storage.js';
import { ErasureCleanup } from './narration.entities.js';
import type { VoiceCloner } from './providers/speech.js';

/**
 * Narration's ErasureSweeper (platform/erasure/sweeper.ts): it deletes the stored files
 * (samples, parts, narrations), and the cloned voices at their provider.
 */
export function narrationErasureSweeper(options: {
  orm: MikroORM;
  storage: BlobStorage;
  /** The cloner that made the voices (NARRATION_VOICE_PROVIDER): it deletes them. */
  cloner: VoiceCloner;
  logger: Logger;
  everyMs?: number;
}): ErasureSweeper<ErasureCleanup> {
  const { cloner, ...rest } = options;
  return new ErasureSweeper({
    ...rest,
    step: 'narration',
    entity: ErasureCleanup,
    providerWork: {
      PROVIDER_VOICE: {
        async perform(row, { signal }) {
          // The settings changed since the voice was cloned: kept, in case they change back.
          if (row.provider !== cloner.name) throw new Error(`the voice was cloned by ${row.provider}, and ${cloner.name} is configured`);
          await cloner.deleteVoice(row.target, { signal });
        },
        // About a day of waits before it is given up on.
        maxAttempts: 30,
        givenUp: { level: 'error', message: 'gave up deleting the cloned voice of an erased account at its provider' },
      },
    },
  });
}
