import { SchemaMigration } from '../../../platform/db/migration.js';
import { erasureDdl } from '../../../platform/erasure/cleanup.entity.js';

/** Narration becomes a step of the user deletion saga (erasure.consumer.ts). */
export class Migration20261129100000_narration_erasure extends SchemaMigration {
  override up(): void {
    this.sql(
      // erased_user refuses a sample, clone or narration asked for with a token still valid;
      // erasure_cleanup holds the files and cloned voices left to delete.
      ...erasureDdl({ kinds: ['PROVIDER_VOICE'] }),
      // The erasure finds a user's narrations by it (samples and the voice have theirs already).
      `create index "narration_job_user_idx" on "narration_job" ("user_id")`,
    );
  }
}
