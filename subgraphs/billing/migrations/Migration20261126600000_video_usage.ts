import { SchemaMigration } from '../../../platform/db/migration.js';

export class Migration20261126600000_video_usage extends SchemaMigration {
  override up(): void {
    this.sql(
      `alter table "plan" add column "videos_per_month" integer null check ("videos_per_month" >= 0)`,
      // Limits are data, as in the first migration; PLATINUM keeps null: unlimited.
      `update "plan" set "videos_per_month" = case "tier" when 'FREE' then 1 when 'SILVER' then 5 when 'GOLD' then 20 else null end`,
      // Default 0, so the rows of months counted before videos existed read as "none generated".
      `alter table "usage" add column "videos_generated" integer not null default 0`,
      // Its own column, not the stories one: each metric is announced once per month and limit.
      `alter table "usage" add column "videos_limit_reached" integer null`,
    );
  }
}
