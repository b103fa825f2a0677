import type { EntityManager } from '@mikro-orm/postgresql';
import type { EventEnvelope } from '../../platform/events/envelope.js';
import type { DeliveryRequest } from './deliveries.js';
import { KnownStory, Recipient } from './notification.entities.js';
import { deliveryKey, normalizeAddress, type Category, type Channel } from './preferences.rules.js';
import { DEFAULT_TEMPLATE_KEYS } from './templates/defaults.js';

/** A variable whose value travels sealed (an invite link) and is opened only to render the message. */
export interface SealedValue {
  $sealed: string;
}

export const isSealed = (value: unknown): value is SealedValue =>
  typeof value === 'object' && value !== null && typeof (value as SealedValue).$sealed === 'string';

/** Where links in messages lead: the web app's pages. */
export interface Links {
  app(): string;
}

const path = (links: Links, ...parts: string[]) => `${links.app().replace(/\/+$/, '')}/${parts.map(encodeURIComponent).join('/')}`;

/** Thrown when an event names someone or something the directory has not seen yet: the event is retried. */
export class NotYetKnown extends Error {
  constructor(what: string) {
    super(`${what} is not known to notification yet`);
    this.name = 'NotYetKnown';
  }
}

type Target =
  /** A registered person: every channel they can be reached on. */
  | { userId: string }
  /** Addresses the sender knew (an invitee); each may belong to a registered person. */
  | { email: string | null; phone: string | null; localeHint: string };

interface Plan {
  targets: Target[];
  variables: Record<string, unknown>;
}

/** The events a person hears about, and who they tell (templates/defaults.ts lists each key's variables). */
export const PHONE_VERIFICATION = 'phone.verification';
export const NOTIFYING_EVENTS: readonly string[] = DEFAULT_TEMPLATE_KEYS.map((k) => k.key).filter((key) => key !== PHONE_VERIFICATION);
const CATEGORY_OF = new Map<string, Category>(DEFAULT_TEMPLATE_KEYS.map((k) => [k.key, k.category]));

/**
 * The deliveries an event asks for: who receives it, on which channels, in which locale, with
 * which values. Reads only notification's own directory (recipients and stories projected from
 * the stream); never another subgraph's tables.
 */
export async function requestsFor(em: EntityManager, event: EventEnvelope, links: Links): Promise<DeliveryRequest[]> {
  const category = CATEGORY_OF.get(event.type);
  if (!category || !NOTIFYING_EVENTS.includes(event.type)) return [];
  const plan = await planFor(em, event, links);
  const requests: DeliveryRequest[] = [];
  const base = { cause: event.type, eventId: event.id, campaignId: null, category, templateKey: event.type, variables: plan.variables, correlationId: event.correlationId ?? null };
  const add = (userId: string | null, channel: Channel, address: string, locale: string) =>
    requests.push({ ...base, dedupeKey: `event:${deliveryKey(event.id, channel, address)}`, userId, channel, address, locale });
  for (const target of plan.targets) {
    if ('userId' in target) {
      const person = await em.findOne(Recipient, { userId: target.userId });
      if (!person) throw new NotYetKnown(`user ${target.userId}`);
      if (person.deletedAt) continue;
      if (person.email) add(person.userId, 'EMAIL', person.email, person.locale);
      if (person.phone) add(person.userId, 'SMS', person.phone, person.locale);
      continue;
    }
    for (const [channel, address] of [['EMAIL', target.email], ['SMS', target.phone]] as const) {
      if (!address) continue;
      // The address may be a registered person's: then it is theirs, in their language, by their choices.
      const owner = await ownerOf(em, channel, address);
      add(owner?.userId ?? null, channel, address, owner?.locale ?? target.localeHint);
    }
  }
  return requests;
}

async function ownerOf(em: EntityManager, channel: Channel, address: string): Promise<Recipient | null> {
  const normal = normalizeAddress(channel, address);
  return em.findOne(Recipient, channel === 'EMAIL' ? { email: normal, deletedAt: null } : { phone: normal, deletedAt: null });
}

async function person(em: EntityManager, userId: string | null | undefined): Promise<Recipient> {
  if (!userId) throw new Error('the event concerns no user');
  const found = await em.findOne(Recipient, { userId });
  if (!found) throw new NotYetKnown(`user ${userId}`);
  return found;
}

async function story(em: EntityManager, storyId: string): Promise<KnownStory> {
  const found = await em.findOne(KnownStory, { storyId });
  if (!found) throw new NotYetKnown(`story ${storyId}`);
  return found;
}

async function planFor(em: EntityManager, event: EventEnvelope, links: Links): Promise<Plan> {
  const p = event.payload as Record<string, any>;
  const storyLink = (storyId: string) => path(links, 'stories', storyId);
  switch (event.type) {
    case 'collaboration.invitation.sent': {
      const inviter = await person(em, event.userId);
      return {
        targets: [{ email: p.inviteeEmail, phone: p.inviteePhone, localeHint: inviter.locale }],
        variables: {
          inviteeName: p.inviteeName,
          inviterName: inviter.displayName,
          storyTitle: p.storyTitle,
          characterName: p.characterName,
          inviteLink: { $sealed: p.inviteLinkSealed } satisfies SealedValue,
          expiresAt: p.expiresAt,
        },
      };
    }
    case 'collaboration.invitation.accepted':
      return {
        targets: [{ userId: p.invitedBy }],
        variables: { participantName: p.participantName, storyTitle: p.storyTitle, characterName: p.characterName, storyLink: storyLink(p.storyId) },
      };
    case 'collaboration.submission.completed':
      return {
        targets: [{ userId: p.authorId }],
        variables: { participantName: p.participantName, storyTitle: p.storyTitle, characterName: p.characterName, storyLink: storyLink(p.storyId) },
      };
    case 'collaboration.completed':
      return { targets: [{ userId: p.authorId }], variables: { storyTitle: p.storyTitle, participantCount: p.participants, storyLink: storyLink(p.storyId) } };
    case 'story.published':
      return { targets: [{ userId: event.userId! }], variables: { storyTitle: p.title, publishedAt: p.publishedAt, storyLink: storyLink(p.storyId) } };
    case 'story.analysis.completed': {
      const known = await story(em, p.storyId);
      return { targets: [{ userId: known.authorId }], variables: { storyTitle: known.title, readingTimeMinutes: p.readingTimeMinutes, storyLink: storyLink(p.storyId) } };
    }
    case 'narration.generation.completed': {
      const known = await story(em, p.storyId);
      return { targets: [{ userId: event.userId! }], variables: { storyTitle: known.title, listenLink: path(links, 'stories', p.storyId, 'narrations', p.jobId) } };
    }
    case 'voice.cloned':
      return { targets: [{ userId: event.userId! }], variables: { sampleCount: p.samples, voiceLink: path(links, 'voice') } };
    case 'video.generation.completed': {
      const known = await story(em, p.storyId);
      return { targets: [{ userId: event.userId! }], variables: { storyTitle: known.title, videoLink: path(links, 'stories', p.storyId, 'videos', p.jobId) } };
    }
    case 'video.generation.failed': {
      const known = await story(em, p.storyId);
      return { targets: [{ userId: event.userId! }], variables: { storyTitle: known.title, storyLink: storyLink(p.storyId) } };
    }
    case 'user.registered':
      return { targets: [{ userId: p.userId }], variables: { displayName: p.displayName, appLink: links.app() } };
    case 'subscription.upgraded':
      return { targets: [{ userId: p.userId }], variables: { plan: p.toTier, billingLink: path(links, 'billing') } };
    case 'usage.limit.reached':
      return { targets: [{ userId: p.userId }], variables: { metric: p.metric, limit: p.limit, upgradeLink: path(links, 'billing') } };
    default:
      return { targets: [], variables: {} };
  }
}
