import type { EventEnvelope, NewEvent } from '../../platform/events/envelope.js';
import type { AnalysisFailureReason } from './analysis/analyser.js';

/**
 * What the story subgraph publishes and what it reads of the events it consumes (catalog:
 * schema/events/catalog.json). Consumed types are named here, not imported from their
 * publishers: subgraphs share the catalog, not code. The envelope's userId is the author.
 */
export const STORY_CREATED = 'story.created';
export const STORY_UPDATED = 'story.updated';
export const STORY_PUBLISHED = 'story.published';
export const STORY_ARCHIVED = 'story.archived';
export const STORY_ANALYSIS_COMPLETED = 'story.analysis.completed';
export const STORY_ANALYSIS_FAILED = 'story.analysis.failed';
export const STORY_COLLABORATION_COMPLETED = 'story.collaboration.completed';

/** The metadata the original system sends with story events. */
interface StoryMetadata {
  storyId: string;
  title: string;
  category: string | null;
  genre: string | null;
}

export const storyMetadata = (story: { id: string; title: string; category: string | null; genre: string | null }): StoryMetadata => ({
  storyId: story.id,
  title: story.title,
  category: story.category,
  genre: story.genre,
});

export type StoryCreated = StoryMetadata;

export interface StoryUpdated extends StoryMetadata {
  /** The fields this update changed, e.g. ["title", "content"]. */
  changed: string[];
}

export interface StoryPublished extends StoryMetadata {
  /** ISO-8601. */
  publishedAt: string;
}

export interface StoryArchived extends StoryMetadata {
  /** AUTHOR: archived by its author; ACCOUNT_DELETED: the author's account was deleted. */
  reason: 'AUTHOR' | 'ACCOUNT_DELETED';
}

export interface StoryAnalysisCompleted {
  storyId: string;
  provider: string;
  model: string;
  genre: string;
  readingTimeMinutes: number;
  characters: { id: string; name: string }[];
  /** The strongest emotion, if any. */
  dominantEmotion: string | null;
}

export interface StoryAnalysisFailed {
  storyId: string;
  reason: AnalysisFailureReason;
  message: string;
}

export interface StoryCollaborationCompleted {
  storyId: string;
  templateId: string;
}

/** Consumed. */
export const USER_DELETED = 'user.deleted';
export const COLLABORATION_COMPLETED = 'collaboration.completed';
export const VOICE_CLONED = 'voice.cloned';
export const SUBSCRIPTION_EVENTS = 'subscription.*';

export interface UserDeleted {
  userId: string;
}

export interface CollaborationCompleted {
  templateId: string;
  storyId: string;
}

export interface VoiceCloned {
  voiceId: string;
}

/** What every subscription.* event carries (billing's catalog entries). */
export interface SubscriptionChange {
  userId: string;
  /** Absent from events published before billing versioned memberships. */
  membershipVersion?: number;
  entitlements: { tier: string; storiesPerMonth: number | null; collaboratorsPerStory: number | null };
}

/**
 * This subgraph is a step of identity's user deletion saga: it reports user.erasure.completed
 * in the transaction that erased the user's data here, and erases again when identity asks
 * (user.erasure.requested naming it) because no report came in time.
 */
export const USER_ERASURE_REQUESTED = 'user.erasure.requested';
export const USER_ERASURE_COMPLETED = 'user.erasure.completed';
const ERASURE_STEP = 'story';

export interface UserErasureRequested {
  userId: string;
  services: string[];
  attempt: number;
  /** When the account was deleted (ISO-8601). */
  requestedAt: string;
}

export interface UserErasureCompleted {
  userId: string;
  service: string;
}

/**
 * Whose data to erase, and as of when (the deletion's time, so a late or repeated erasure has
 * the effect it would have had on time): user.deleted, or a request naming this subgraph.
 * Null for a request to other subgraphs.
 */
export function erasureAsked(event: EventEnvelope): { userId: string; at: Date } | null {
  if (event.type === USER_DELETED) return { userId: (event.payload as UserDeleted).userId, at: new Date(event.timestamp) };
  if (event.type !== USER_ERASURE_REQUESTED) return null;
  const { userId, services, requestedAt } = event.payload as UserErasureRequested;
  return services.includes(ERASURE_STEP) ? { userId, at: new Date(requestedAt) } : null;
}

/** The report the saga waits for. */
export function erasureCompleted(userId: string): NewEvent<UserErasureCompleted> {
  return { type: USER_ERASURE_COMPLETED, userId, payload: { userId, service: ERASURE_STEP } };
}
