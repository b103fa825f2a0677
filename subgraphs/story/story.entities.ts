import { EntitySchema } from '@mikro-orm/postgresql';
import type { AnalysedEmotion, AnalysisFailureReason } from './analysis/analyser.js';
import type { AnalysisStatus, StoryAudience, StoryStatus, StoryTone } from './story.rules.js';

/** A story. Only the author's id is kept: who the author is, identity knows (federation joins). */
export interface Story {
  id: string;
  authorId: string;
  title: string;
  content: string;
  status: StoryStatus;
  category: string | null;
  genre: string | null;
  tone: StoryTone | null;
  audience: StoryAudience | null;
  language: string | null;
  wordCount: number;
  createdAt: Date;
  updatedAt: Date;
  publishedAt: Date | null;
  archivedAt: Date | null;
  collaborationCompletedAt: Date | null;
}

export const Story = new EntitySchema<Story>({
  name: 'Story',
  tableName: 'story',
  properties: {
    id: { type: 'uuid', primary: true },
    authorId: { type: 'uuid', fieldName: 'author_id' },
    title: { type: 'text' },
    content: { type: 'text', lazy: false },
    status: { type: 'string' },
    category: { type: 'string', nullable: true },
    genre: { type: 'string', nullable: true },
    tone: { type: 'string', nullable: true },
    audience: { type: 'string', nullable: true },
    language: { type: 'string', nullable: true },
    wordCount: { type: 'integer', fieldName: 'word_count' },
    createdAt: { type: 'Date', fieldName: 'created_at' },
    updatedAt: { type: 'Date', fieldName: 'updated_at' },
    publishedAt: { type: 'Date', nullable: true, fieldName: 'published_at' },
    archivedAt: { type: 'Date', nullable: true, fieldName: 'archived_at' },
    collaborationCompletedAt: { type: 'Date', nullable: true, fieldName: 'collaboration_completed_at' },
  },
});

/** A character as stored with its analysis; `id` derives from the story and the name (rules.characterId). */
export interface StoredCharacter {
  id: string;
  name: string;
  description: string;
  traits: string[];
}

/**
 * The latest analysis of a story, and its job: a worker claims a PENDING row (or a RUNNING one
 * whose lease ran out because its worker died), runs the analyser outside any transaction, and
 * stores the result only if the row is still its run (`runId`): a newer request wins.
 */
export interface StoryAnalysis {
  storyId: string;
  status: AnalysisStatus;
  /** Of the title, content and language analysed (or asked for): a publish does not redo the same text. */
  contentHash: string;
  summary: string | null;
  genre: string | null;
  readingTimeMinutes: number | null;
  characters: StoredCharacter[];
  emotions: AnalysedEmotion[];
  provider: string | null;
  model: string | null;
  notes: string[];
  failureReason: AnalysisFailureReason | null;
  failureMessage: string | null;
  requestedAt: Date;
  /** The request that asked for it, so the completion event continues its trace. */
  correlationId: string | null;
  startedAt: Date | null;
  completedAt: Date | null;
  /** Claims of this request so far: a story that keeps killing its worker is failed, not retried forever. */
  attempts: number;
  runId: string | null;
  leaseUntil: Date | null;
}

export const StoryAnalysis = new EntitySchema<StoryAnalysis>({
  name: 'StoryAnalysis',
  tableName: 'story_analysis',
  properties: {
    storyId: { type: 'uuid', primary: true, fieldName: 'story_id' },
    status: { type: 'string' },
    contentHash: { type: 'string', fieldName: 'content_hash' },
    summary: { type: 'text', nullable: true },
    genre: { type: 'string', nullable: true },
    readingTimeMinutes: { type: 'integer', nullable: true, fieldName: 'reading_time_minutes' },
    characters: { type: 'json' },
    emotions: { type: 'json' },
    provider: { type: 'string', nullable: true },
    model: { type: 'string', nullable: true },
    notes: { type: 'json' },
    failureReason: { type: 'string', nullable: true, fieldName: 'failure_reason' },
    failureMessage: { type: 'text', nullable: true, fieldName: 'failure_message' },
    requestedAt: { type: 'Date', fieldName: 'requested_at' },
    correlationId: { type: 'string', nullable: true, fieldName: 'correlation_id' },
    startedAt: { type: 'Date', nullable: true, fieldName: 'started_at' },
    completedAt: { type: 'Date', nullable: true, fieldName: 'completed_at' },
    attempts: { type: 'integer' },
    runId: { type: 'uuid', nullable: true, fieldName: 'run_id' },
    leaseUntil: { type: 'Date', nullable: true, fieldName: 'lease_until' },
  },
});

/**
 * What a user's plan allows, as billing announced it (subscription.* events): the story
 * subgraph's own projection, so creating a story asks no other service.
 */
export interface Entitlement {
  userId: string;
  tier: string;
  /** null: unlimited. */
  storiesPerMonth: number | null;
  collaboratorsPerStory: number | null;
  /** Billing's version of the membership: an older event (a replay, a redelivery) never overwrites a newer one. */
  membershipVersion: number;
  /** When billing made the change. */
  asOf: Date;
}

export const Entitlement = new EntitySchema<Entitlement>({
  name: 'Entitlement',
  tableName: 'entitlement',
  properties: {
    userId: { type: 'uuid', primary: true, fieldName: 'user_id' },
    tier: { type: 'string' },
    storiesPerMonth: { type: 'integer', nullable: true, fieldName: 'stories_per_month' },
    collaboratorsPerStory: { type: 'integer', nullable: true, fieldName: 'collaborators_per_story' },
    membershipVersion: { type: 'integer', fieldName: 'membership_version' },
    asOf: { type: 'Date', fieldName: 'as_of' },
  },
});

/** A user's cloned voice (voice.cloned), so the story subgraph can say narration is available. */
export interface AuthorVoice {
  userId: string;
  voiceId: string;
  clonedAt: Date;
}

export const AuthorVoice = new EntitySchema<AuthorVoice>({
  name: 'AuthorVoice',
  tableName: 'author_voice',
  properties: {
    userId: { type: 'uuid', primary: true, fieldName: 'user_id' },
    voiceId: { type: 'string', fieldName: 'voice_id' },
    clonedAt: { type: 'Date', fieldName: 'cloned_at' },
  },
});

export const storyEntities = [Story, StoryAnalysis, Entitlement, AuthorVoice];
