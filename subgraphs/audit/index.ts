import type { SubgraphModule } from '../../platform/subgraph/module.js';
import { auditEntities } from './audit.entities.js';
import { auditResolvers } from './audit.resolvers.js';
import { erasureConsumer } from './erasure.consumer.js';
import { eventLogConsumer } from './event-log.consumer.js';
import { auditMigrations } from './migrations/index.js';
import { OperationsService } from './operations.service.js';

/**
 * Audit: the operator's views. The event log (every domain event as it travelled), the system's
 * status, and the dead letters of every subgraph. A step of the deletion saga: the log keeps a
 * deleted user's events without their personal data (erasure.consumer.ts).
 */
export const audit: SubgraphModule = {
  name: 'audit',
  entities: auditEntities,
  migrations: auditMigrations,
  build: ({ config, transport, topology }) => ({
    resolvers: auditResolvers(new OperationsService({ config, transport, topology })),
    consumers: [eventLogConsumer, erasureConsumer],
  }),
};
