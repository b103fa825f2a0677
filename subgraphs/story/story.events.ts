import type { EventEnvelope } from '../../platform/events/envelope.js';
import type { AnalysisFailureReason } from './analysis/analyser.js';
import { erasureAsked as erasureAskedOf, erasureCompleted as erasureCompletedBy } from '../../platform/events/erasure.js';

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
 * This subgraph is a step of identity's user deletion saga (platform/events/erasure.ts): it
 * reports user.erasure.completed in the transaction that erased the user's data here.
 */
export { USER_ERASURE_COMPLETED, USER_ERASURE_REQUESTED, type UserErasureCompleted, type UserErasureRequested } from '../../platform/events/erasure.js';
const ERASURE_STEP = 'story';
/** Whose data to erase here, and as of when; null when the event asks nothing of this subgraph. */
export const erasureAsked = (event: EventEnvelope) => erasureAskedOf(event, ERASURE_STEP);
export const erasureCompleted = (userId: string) => erasureCompletedBy(userId, ERASURE_STEP);
