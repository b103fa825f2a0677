import type { EventEnvelope } from '../../platform/events/envelope.js';
import type { Category, Channel } from './preferences.rules.js';
import { erasureAsked as erasureAskedOf, erasureCompleted as erasureCompletedBy } from '../../platform/events/erasure.js';

/**
 * What notification publishes (catalog: schema/events/catalog.json). No payload carries an
 * address or a message's text: the event log is read by admins, the messages are the people's.
 * The envelope's userId is the person a delivery belongs to (null for an unregistered address).
 */
export const NOTIFICATION_REQUESTED = 'notification.requested';
export const NOTIFICATION_SENT = 'notification.sent';
export const NOTIFICATION_DELIVERED = 'notification.delivered';
export const NOTIFICATION_OPENED = 'notification.opened';
export const NOTIFICATION_CLICKED = 'notification.clicked';
export const NOTIFICATION_FAILED = 'notification.failed';
export const NOTIFICATION_BOUNCED = 'notification.bounced';
export const TEMPLATE_UPDATED = 'template.updated';
export const PREFERENCE_CHANGED = 'preference.changed';

export interface NotificationRequested {
  deliveryId: string;
  channel: Channel;
  category: Category;
  template: string;
  cause: string;
  eventId: string | null;
  campaignId: string | null;
}

export interface ProviderReport {
  deliveryId: string;
  channel: Channel;
  provider: string;
}

export interface NotificationSent extends ProviderReport {
  attempts: number;
}

export interface NotificationFailed {
  deliveryId: string;
  channel: Channel;
  provider: string | null;
  code: string;
  error: string;
}

export interface NotificationBounced extends ProviderReport {
  reason: string;
}

export interface TemplateUpdated {
  key: string;
  channel: Channel;
  locale: string;
  version: number;
  source: string;
}

export interface PreferenceChanged {
  category: Category;
  channel: Channel;
  enabled: boolean;
}

/** Consumed: the directory (who is who, which story is whose) and everything a person hears about. */
export const USER_REGISTERED = 'user.registered';
export const USER_UPDATED = 'user.updated';
export const USER_DELETED = 'user.deleted';
export const SUBSCRIPTION_EVENTS = 'subscription.*';
export const STORY_CREATED = 'story.created';
export const STORY_UPDATED = 'story.updated';

export interface UserDeleted {
  userId: string;
}

export interface UserRegistered {
  userId: string;
  email: string;
  displayName: string;
  locale: string;
}

export interface UserUpdated {
  userId: string;
  changes: { displayName?: string; locale?: string };
}

export interface SubscriptionChange {
  userId: string;
  membershipVersion?: number;
  entitlements: { tier: string };
}

export interface StoryMetadata {
  storyId: string;
  title: string;
}

/**
 * This subgraph is a step of identity's user deletion saga (platform/events/erasure.ts): it
 * reports user.erasure.completed in the transaction that erased the user's data here.
 */
export { USER_ERASURE_COMPLETED, USER_ERASURE_REQUESTED, type UserErasureCompleted, type UserErasureRequested } from '../../platform/events/erasure.js';
const ERASURE_STEP = 'notification';
/** Whose data to erase here, and as of when; null when the event asks nothing of this subgraph. */
export const erasureAsked = (event: EventEnvelope) => erasureAskedOf(event, ERASURE_STEP);
export const erasureCompleted = (userId: string) => erasureCompletedBy(userId, ERASURE_STEP);
