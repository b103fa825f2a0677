import { FOR_NOTIFICATION, seal } from '../../platform/sealed.js';
import { recordEvents } from '../../platform/events/outbox.js';
import type { NewEvent } from '../../platform/events/envelope.js';
import type { SubgraphModule } from '../../platform/subgraph/module.js';
import { collaborationConsumer, projectionsConsumer } from './collaboration.consumer.js';
import { collaborationEntities } from './collaboration.entities.js';
import { collaborationResolvers } from './collaboration.resolvers.js';
import { InvitationsService } from './invitations.service.js';
import { collaborationMigrations } from './migrations/index.js';
import { Peers } from './peers.js';
import { TemplatesService } from './templates.service.js';

/** Collaboration: published stories made into roleplays, invitations (users and guests), submissions, completion. */
export const collaboration: SubgraphModule = {
  name: 'collaboration',
  entities: collaborationEntities,
  migrations: collaborationMigrations,
  build({ config, orm, logger, topology, onEventsCommitted }) {
    const clock = () => new Date();
    const peers = new Peers(topology, config.INTERNAL_SECRET);
    const templates = new TemplatesService({ peers, clock });
    const inviteBase = () => config.COLLABORATION_INVITE_URL ?? `${topology.publicUrl()}/invite/`;
    const invitations = new InvitationsService({ peers, clock, inviteUrl: (token) => `${inviteBase()}${token}`,
      sealLink: (url) => seal(config.INTERNAL_SECRET, FOR_NOTIFICATION, url),
    });
    const log = logger.child({ worker: 'invitation-expiry' });
    let sweeper: NodeJS.Timeout | null = null;
    let sweeping: Promise<void> = Promise.resolve();
    // Expired invitations get their event when first touched; this sweep sends it for the rest.
    const sweep = async () => {
      let emitted = 0;
      const expired = await orm.em.fork().transactional(async (em) => {
        const pending: NewEvent[] = [];
        const count = await invitations.sweep(em, (event) => pending.push(event));
        await recordEvents(em, { serviceName: 'collaboration', correlationId: null }, pending);
        emitted = pending.length;
        return count;
      });
      if (emitted) onEventsCommitted();
      if (expired) log.info({ expired }, 'invitations expired');
    };
    return {
      resolvers: collaborationResolvers(templates, invitations),
      consumers: [collaborationConsumer, projectionsConsumer],
      async start() {
        sweeper = setInterval(() => {
          sweeping = sweeping.then(sweep).catch((error: unknown) => log.warn({ err: error }, 'could not sweep expired invitations'));
        }, config.COLLABORATION_SWEEP_MS);
        sweeper.unref();
      },
      async stop() {
        if (sweeper) clearInterval(sweeper);
        await sweeping;
      },
    };
  },
};
