import { EntitySchema } from '@mikro-orm/postgresql';
import type { Category, Channel } from './preferences.rules.js';
import type { TemplateSource } from './templates/template.js';

/**
 * A delivery's life: QUEUED until a provider accepts it (SENT); the provider's webhooks then
 * move it on. SUPPRESSED: never sent, its address bounced before. FAILED: every provider
 * refused it, or it reported the message lost.
 */
export const DELIVERY_STATUSES = ['QUEUED', 'SENT', 'DELIVERED', 'OPENED', 'CLICKED', 'BOUNCED', 'FAILED', 'SUPPRESSED'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

/** Who notification can reach, projected from identity's user.* events and billing's tier. */
export interface Recipient {
  userId: string;
  /** Normalised (lower case); null once the account is deleted. */
  email: string | null;
  /** E.164, confirmed by the person with a code sent to it (confirmNotificationPhone); null without one. */
  phone: string | null;
  /** A number given but not confirmed yet, with the code's hash, expiry and wrong tries. */
  pendingPhone: string | null;
  phoneCodeHash: string | null;
  phoneCodeExpiresAt: Date | null;
  phoneCodeAttempts: number;
  displayName: string;
  locale: string;
  tier: string;
  membershipVersion: number;
  registeredAt: Date;
  deletedAt: Date | null;
}

export const Recipient = new EntitySchema<Recipient>({
  name: 'Recipient',
  tableName: 'recipient',
  properties: {
    userId: { type: 'uuid', primary: true, fieldName: 'user_id' },
    email: { type: 'text', nullable: true },
    phone: { type: 'text', nullable: true },
    displayName: { type: 'text', fieldName: 'display_name' },
    locale: { type: 'text' },
    tier: { type: 'text' },
    membershipVersion: { type: 'integer', fieldName: 'membership_version' },
    registeredAt: { type: 'Date', fieldName: 'registered_at' },
    deletedAt: { type: 'Date', nullable: true, fieldName: 'deleted_at' },
    pendingPhone: { type: 'text', nullable: true, fieldName: 'pending_phone' },
    phoneCodeHash: { type: 'text', nullable: true, fieldName: 'phone_code_hash' },
    phoneCodeExpiresAt: { type: 'Date', nullable: true, fieldName: 'phone_code_expires_at' },
    phoneCodeAttempts: { type: 'integer', fieldName: 'phone_code_attempts' },
  },
});

/** A story's title and author, projected from story.* events (narration and video events carry only the id). */
export interface KnownStory {
  storyId: string;
  authorId: string;
  title: string;
}

export const KnownStory = new EntitySchema<KnownStory>({
  name: 'KnownStory',
  tableName: 'known_story',
  properties: {
    storyId: { type: 'uuid', primary: true, fieldName: 'story_id' },
    authorId: { type: 'uuid', fieldName: 'author_id' },
    title: { type: 'text' },
  },
});

/** A person's choice for one category and channel; without a row the default applies. */
export interface PreferenceRow {
  userId: string;
  category: Category;
  channel: Channel;
  enabled: boolean;
  updatedAt: Date;
}

export const PreferenceRow = new EntitySchema<PreferenceRow>({
  name: 'PreferenceRow',
  tableName: 'preference',
  properties: {
    userId: { type: 'uuid', primary: true, fieldName: 'user_id' },
    category: { type: 'string', primary: true },
    channel: { type: 'string', primary: true },
    enabled: { type: 'boolean' },
    updatedAt: { type: 'Date', fieldName: 'updated_at' },
  },
});

/** One version of a template an admin stored; the newest version of a key, channel and locale is used. */
export interface TemplateRow {
  id: string;
  key: string;
  channel: Channel;
  locale: string;
  version: number;
  subject: string | null;
  body: string;
  html: string | null;
  source: TemplateSource;
  sourceRef: string | null;
  createdBy: string | null;
  createdAt: Date;
}

export const TemplateRow = new EntitySchema<TemplateRow>({
  name: 'TemplateRow',
  tableName: 'template',
  properties: {
    id: { type: 'uuid', primary: true },
    key: { type: 'text' },
    channel: { type: 'string' },
    locale: { type: 'text' },
    version: { type: 'integer' },
    subject: { type: 'text', nullable: true },
    body: { type: 'text' },
    html: { type: 'text', nullable: true },
    source: { type: 'string' },
    sourceRef: { type: 'text', nullable: true, fieldName: 'source_ref' },
    createdBy: { type: 'uuid', nullable: true, fieldName: 'created_by' },
    createdAt: { type: 'Date', fieldName: 'created_at' },
  },
});

/**
 * One message to one address over one channel. The table is also the send queue: the worker
 * claims due QUEUED rows with SKIP LOCKED and a lease, so a crashed sender's rows come back.
 */
export interface Delivery {
  id: string;
  /** One delivery per cause, channel and address: `event:<id>:<channel>:<address>` or `campaign:<id>:<channel>:<user>`. */
  dedupeKey: string;
  eventId: string | null;
  campaignId: string | null;
  /** The person it belongs to: the registered user whose address it is, when there is one. */
  userId: string | null;
  channel: Channel;
  category: Category;
  templateKey: string;
  locale: string;
  address: string;
  /** The template's values; secrets (an invite link) stay sealed until the message is rendered. */
  variables: Record<string, unknown>;
  status: DeliveryStatus;
  provider: string | null;
  providerMessageId: string | null;
  attempts: number;
  nextAttemptAt: Date;
  leaseUntil: Date | null;
  errorCode: string | null;
  error: string | null;
  correlationId: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export const Delivery = new EntitySchema<Delivery>({
  name: 'Delivery',
  tableName: 'delivery',
  properties: {
    id: { type: 'uuid', primary: true },
    dedupeKey: { type: 'text', fieldName: 'dedupe_key' },
    eventId: { type: 'uuid', nullable: true, fieldName: 'event_id' },
    campaignId: { type: 'uuid', nullable: true, fieldName: 'campaign_id' },
    userId: { type: 'uuid', nullable: true, fieldName: 'user_id' },
    channel: { type: 'string' },
    category: { type: 'string' },
    templateKey: { type: 'text', fieldName: 'template_key' },
    locale: { type: 'text' },
    address: { type: 'text' },
    variables: { type: 'json' },
    status: { type: 'string' },
    provider: { type: 'string', nullable: true },
    providerMessageId: { type: 'text', nullable: true, fieldName: 'provider_message_id' },
    attempts: { type: 'integer' },
    nextAttemptAt: { type: 'Date', fieldName: 'next_attempt_at' },
    leaseUntil: { type: 'Date', nullable: true, fieldName: 'lease_until' },
    errorCode: { type: 'string', nullable: true, fieldName: 'error_code' },
    error: { type: 'text', nullable: true },
    correlationId: { type: 'text', nullable: true, fieldName: 'correlation_id' },
    createdAt: { type: 'Date', fieldName: 'created_at' },
    updatedAt: { type: 'Date', fieldName: 'updated_at' },
  },
});

/**
 * An address nothing is sent to. BOUNCE: it hard-bounced; its owner confirming it again lifts
 * that. OPT_OUT: its holder asked for no more (a spam complaint, an SMS STOP); only they can undo it.
 */
export interface Suppression {
  channel: Channel;
  address: string;
  reason: string;
  kind: 'BOUNCE' | 'OPT_OUT';
  deliveryId: string | null;
  createdAt: Date;
}

export const Suppression = new EntitySchema<Suppression>({
  name: 'Suppression',
  tableName: 'suppression',
  properties: {
    channel: { type: 'string', primary: true },
    address: { type: 'text', primary: true },
    reason: { type: 'text' },
    kind: { type: 'string' },
    deliveryId: { type: 'uuid', nullable: true, fieldName: 'delivery_id' },
    createdAt: { type: 'Date', fieldName: 'created_at' },
  },
});

export type CampaignStatus = 'QUEUED' | 'RUNNING' | 'COMPLETED' | 'FAILED';
export type CampaignAudience = 'ALL_USERS' | 'PLAN_TIER';

/** A template sent to an audience, in batches; `cursor` is the last user id done, so a restart goes on from there. */
export interface Campaign {
  id: string;
  name: string;
  templateKey: string;
  category: Category;
  audience: CampaignAudience;
  tier: string | null;
  status: CampaignStatus;
  /** Users the audience held when the campaign started. */
  audienceSize: number;
  processedUsers: number;
  /** Deliveries made: one per opted-in user and channel. */
  recipients: number;
  cursor: string | null;
  leaseUntil: Date | null;
  error: string | null;
  createdBy: string;
  createdAt: Date;
  startedAt: Date | null;
  completedAt: Date | null;
}

export const Campaign = new EntitySchema<Campaign>({
  name: 'Campaign',
  tableName: 'campaign',
  properties: {
    id: { type: 'uuid', primary: true },
    name: { type: 'text' },
    templateKey: { type: 'text', fieldName: 'template_key' },
    category: { type: 'string' },
    audience: { type: 'string' },
    tier: { type: 'string', nullable: true },
    status: { type: 'string' },
    audienceSize: { type: 'integer', fieldName: 'audience_size' },
    processedUsers: { type: 'integer', fieldName: 'processed_users' },
    recipients: { type: 'integer' },
    cursor: { type: 'uuid', nullable: true },
    leaseUntil: { type: 'Date', nullable: true, fieldName: 'lease_until' },
    error: { type: 'text', nullable: true },
    createdBy: { type: 'uuid', fieldName: 'created_by' },
    createdAt: { type: 'Date', fieldName: 'created_at' },
    startedAt: { type: 'Date', nullable: true, fieldName: 'started_at' },
    completedAt: { type: 'Date', nullable: true, fieldName: 'completed_at' },
  },
});

export const notificationEntities = [Recipient, KnownStory, PreferenceRow, TemplateRow, Delivery, Suppression, Campaign];
