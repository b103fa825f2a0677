import { mutationPayload } from '../../platform/errors.js';
import type { PageArgs } from '../../platform/graphql/connection.js';
import { DateTime } from '../../platform/graphql/scalars.js';
import { requireUser, type SubgraphContext } from '../../platform/subgraph/context.js';
import type { Resolvers } from '../../platform/subgraph/server.js';
import type { CampaignInput, CampaignsService } from './campaigns.js';
import type { Campaign, TemplateRow } from './notification.entities.js';
import { canSee, type PeopleService } from './people.service.js';
import type { Preference } from './preferences.rules.js';
import type { TemplateInput, TemplatesService } from './templates.service.js';

export function notificationResolvers(people: PeopleService, templates: TemplatesService, campaigns: CampaignsService): Resolvers {
  return {
    DateTime,
    Query: {
      notificationTemplates: (_: unknown, { key }: { key?: string | null }, ctx: SubgraphContext) => templates.current(ctx, key),
      campaign: (_: unknown, { id }: { id: string }, ctx: SubgraphContext) => campaigns.byId(ctx, id),
    },
    Mutation: {
      setNotificationPreference: (_: unknown, { input }: { input: Preference }, ctx: SubgraphContext) => mutationPayload(() => people.setPreference(ctx, input)),
      setNotificationPhone: (_: unknown, { input }: { input: { phone?: string | null } }, ctx: SubgraphContext) => mutationPayload(() => people.setPhone(ctx, input.phone)),
      confirmNotificationPhone: (_: unknown, { input }: { input: { code: string } }, ctx: SubgraphContext) => mutationPayload(() => people.confirmPhone(ctx, input.code)),
      upsertNotificationTemplate: (_: unknown, { input }: { input: TemplateInput }, ctx: SubgraphContext) => mutationPayload(() => templates.upsert(ctx, input)),
      sendCampaign: (_: unknown, { input }: { input: CampaignInput }, ctx: SubgraphContext) => mutationPayload(() => campaigns.send(ctx, input)),
    },
    User: {
      __resolveReference: ({ id }: { id: string }) => ({ id }),
      // Null rather than an error for others, so a list of users still resolves.
      notificationPreferences: (user: { id: string }, _: unknown, ctx: SubgraphContext) => (ctx.caller.userId && canSee(ctx, user.id) ? people.preferences(ctx, user.id) : null),
      deliveries: (user: { id: string }, args: PageArgs, ctx: SubgraphContext) => {
        requireUser(ctx);
        return people.deliveries(ctx, user.id, args);
      },
      notificationPhone: (user: { id: string }, _: unknown, ctx: SubgraphContext) => (ctx.caller.userId && canSee(ctx, user.id) ? people.phone(ctx, user.id) : null),
    },
    Delivery: {
      template: (d: { templateKey: string }) => d.templateKey,
    },
    NotificationTemplate: {
      createdAt: (t: TemplateRow) => t.createdAt,
    },
    Campaign: {
      sent: (c: Campaign, _: unknown, ctx: SubgraphContext) => campaigns.sent(ctx, c),
    },
  };
}
