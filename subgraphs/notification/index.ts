import { join } from 'node:path';
import { FOR_NOTIFICATION, seal, unseal } from '../../platform/sealed.js';
import type { SubgraphModule } from '../../platform/subgraph/module.js';
import { CampaignRunner, CampaignsService } from './campaigns.js';
import type { Links } from './causes.js';
import { DeliveryWorker } from './delivery.worker.js';
import { notificationMigrations } from './migrations/index.js';
import { notificationConsumer } from './notification.consumer.js';
import { notificationEntities } from './notification.entities.js';
import { notificationResolvers } from './notification.resolvers.js';
import { PeopleService } from './people.service.js';
import { sendersFor } from './providers/select.js';
import { databaseTemplateStore, TemplatesService } from './templates.service.js';
import { defaultTemplateStore } from './templates/defaults.js';
import { UrlCache, type SourceOptions } from './templates/sources.js';
import { twilioStatusCallbackUrl, webhookRoutes } from './webhooks.routes.js';
import { WebhooksService } from './webhooks.service.js';

/**
 * Notification: what people hear about and how. Events become deliveries (preferences,
 * suppressions, one per event and address), a worker sends them through the channel's
 * providers with retries and fallback, provider webhooks move them on, admins manage
 * templates and send campaigns.
 */
export const notification: SubgraphModule = {
  name: 'notification',
  entities: notificationEntities,
  migrations: notificationMigrations,
  build({ config, orm, logger, topology, onEventsCommitted }) {
    const log = logger.child({ subgraph: 'notification' });
    const appUrl = () => config.NOTIFICATION_APP_URL ?? topology.publicUrl();
    const links: Links = { app: appUrl };
    const senders = sendersFor(config, log);
    const sources: SourceOptions = {
      templatesDir: config.NOTIFICATION_TEMPLATE_DIR ?? join(config.DATA_DIR, 'templates'),
      cacheTtlMs: config.NOTIFICATION_URL_TEMPLATE_TTL_MS,
      maxBytes: 256 * 1024,
      timeoutMs: config.NOTIFICATION_TIMEOUT_MS,
      cache: new UrlCache(),
    };
    const templateAccess = { store: databaseTemplateStore, defaults: defaultTemplateStore() };
    const worker = new DeliveryWorker({
      orm,
      senders,
      ...templateAccess,
      sources,
      unseal: (sealed) => unseal(config.INTERNAL_SECRET, FOR_NOTIFICATION, sealed),
      // Twilio is told where to report only when it can reach us: through the gateway's public address.
      statusCallbackUrl: (deliveryId) => (config.NOTIFICATION_SMS_PROVIDERS.includes('twilio') ? twilioStatusCallbackUrl(topology.publicUrl(), deliveryId) : null),
      concurrency: config.NOTIFICATION_CONCURRENCY,
      pollMs: config.NOTIFICATION_POLL_MS,
      leaseMs: config.NOTIFICATION_LEASE_MS,
      maxAttempts: config.NOTIFICATION_MAX_ATTEMPTS,
      retryBaseMs: config.NOTIFICATION_RETRY_BASE_MS * 8,
      rateLimitPerHour: config.NOTIFICATION_RATE_LIMIT_PER_HOUR,
      logger: log,
      onEventsCommitted,
    });
    const runner = new CampaignRunner({
      orm,
      templates: templateAccess,
      links,
      batchSize: config.NOTIFICATION_CAMPAIGN_BATCH,
      pollMs: config.NOTIFICATION_POLL_MS,
      leaseMs: config.NOTIFICATION_LEASE_MS,
      logger: log,
      onEventsCommitted,
      onDeliveriesQueued: () => worker.wake(),
    });
    const webhooks = new WebhooksService(orm, log, onEventsCommitted);
    return {
      resolvers: notificationResolvers(new PeopleService({ secret: config.INTERNAL_SECRET, seal: (value) => seal(config.INTERNAL_SECRET, FOR_NOTIFICATION, value), now: () => new Date() }), new TemplatesService(sources), new CampaignsService(templateAccess, () => runner.wake())),
      routes: webhookRoutes(webhooks, { sendGridPublicKey: config.SENDGRID_WEBHOOK_PUBLIC_KEY, twilioAuthToken: config.TWILIO_AUTH_TOKEN, publicUrl: topology.publicUrl }, log),
      consumers: [notificationConsumer(links)],
      async start() {
        log.info({ email: senders.chains.email, sms: senders.chains.sms, mailbox: senders.chains.email.includes('local') || senders.chains.sms.includes('local') ? senders.mailboxDir : undefined }, 'notification providers');
        await worker.start();
        runner.start();
      },
      async stop() {
        await runner.stop();
        await worker.stop();
      },
    };
  },
};
