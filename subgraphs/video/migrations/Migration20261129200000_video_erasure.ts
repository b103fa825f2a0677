import { SchemaMigration } from '../../../platform/db/migration.js';
import { erasureDdl } from '../../../platform/erasure/cleanup.entity.js';

/** Video becomes a step of the user deletion saga (erasure.consumer.ts). */
export class Migration20261129200000_video_erasure extends SchemaMigration {
  override up(): void {
    // erased_user refuses a video asked for with a token still valid; erasure_cleanup holds the
    // videos left to delete and the provider tasks to cancel, with the task's handle.
    this.sql(...erasureDdl({ kinds: ['PROVIDER_TASK'], columns: ['"task" jsonb null'] }));
  }
}
