import type { SubgraphModule } from '../../platform/subgraph/module.js';
import { membershipConsumer, usageConsumer } from './billing.consumer.js';
import { billingEntities } from './billing.entities.js';
import { billingResolvers } from './billing.resolvers.js';
import { BillingService } from './billing.service.js';
import { billingMigrations } from './migrations/index.js';

/** Billing (the seed's Subscription service): plans, memberships, usage, invoices. */
export const billing: SubgraphModule = {
  name: 'billing',
  entities: billingEntities,
  migrations: billingMigrations,
  build() {
    return { resolvers: billingResolvers(new BillingService()), consumers: [membershipConsumer, usageConsumer] };
  },
};
