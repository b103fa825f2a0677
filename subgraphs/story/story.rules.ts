import { createHash } from 'node:crypto';
import { userError } from '../../platform/errors.js';

/**
 * The story domain's rules as plain functions of input, state and clock (STYLE 2): no I/O, so
 * each is unit-tested directly; the service loads, calls, and persists.
 */
export type StoryStatus = 'DRAFT' | 'PUBLISHED' | 'ARCHIVED';
export type AnalysisStatus = 'PENDING' | 'RUNNING' | 'COMPLETED' | 'FAILED';
export type StoryTone = 'LIGHTHEARTED' | 'WHIMSICAL' | 'SERIOUS' | 'DARK' | 'SUSPENSEFUL' | 'ROMANTIC' | 'HUMOROUS' | 'INSPIRATIONAL';
export type StoryAudience = 'CHILDREN' | 'YOUNG_ADULT' | 'ADULT' | 'ALL_AGES';

export const MAX_TITLE_LENGTH = 200;
/** A novella; the gateway's body limit (MAX_BODY_BYTES) leaves room for it in any script. */
export const MAX_CONTENT_LENGTH = 200_000;
export const MAX_LABEL_LENGTH = 50;

interface CustomizationInput {
  tone?: StoryTone | null;
  audience?: StoryAudience | null;
  language?: string | null;
}

export interface StoryInput {
  title?: string | null;
  content?: string | null;
  category?: string | null;
  genre?: string | null;
  customization?: CustomizationInput | null;
}

/** The columns an input sets; a key is absent when the input leaves that column as it is. */
export interface StoryFields {
  title?: string;
  content?: string;
  category?: string | null;
  genre?: string | null;
  tone?: StoryTone | null;
  audience?: StoryAudience | null;
  language?: string | null;
}

const invalid = (field: string, message: string) => userError('INVALID_INPUT', message, field);

/** PostgreSQL text cannot hold NUL; a client that sends one gets this, not a failed insert. */
function printable(field: string, value: string): string {
  if (value.includes('\u0000')) throw invalid(field, `${field} contains a NUL character`);
  return value;
}

function title(value: string): string {
  const trimmed = printable('title', value).trim();
  if (!trimmed) throw invalid('title', 'Give the story a title');
  if (trimmed.length > MAX_TITLE_LENGTH) throw invalid('title', `A title has at most ${MAX_TITLE_LENGTH} characters`);
  return trimmed;
}

function content(value: string): string {
  if (value.length > MAX_CONTENT_LENGTH) {
    throw invalid('content', `A story has at most ${MAX_CONTENT_LENGTH.toLocaleString('en')} characters (this one has ${value.length.toLocaleString('en')})`);
  }
  return printable('content', value);
}

/** A free label (category, genre): trimmed, empty means none. */
function label(field: string, value: string | null): string | null {
  const trimmed = printable(field, value ?? '').trim();
  if (trimmed.length > MAX_LABEL_LENGTH) throw invalid(field, `${field} has at most ${MAX_LABEL_LENGTH} characters`);
  return trimmed || null;
}

/** A BCP 47 tag in its canonical case (pt-br -> pt-BR), or INVALID_INPUT. */
function language(value: string | null): string | null {
  if (value === null || !value.trim()) return null;
  try {
    const [canonical] = Intl.getCanonicalLocales(value.trim());
    if (canonical) return canonical;
  } catch {
    // RangeError: not a well-formed tag; answered below
  }
  throw invalid('customization.language', 'Use a BCP 47 language tag such as en or pt-BR');
}

/**
 * Checks and normalises an input. For a new story title and content are required; for an
 * update only the keys present change (GraphQL leaves out the fields a client did not send).
 */
export function storyFields(input: StoryInput, mode: 'create' | 'update'): StoryFields {
  const fields: StoryFields = {};
  if (mode === 'create' || (input.title !== undefined && input.title !== null)) fields.title = title(input.title ?? '');
  if (mode === 'create' || (input.content !== undefined && input.content !== null)) fields.content = content(input.content ?? '');
  if (input.category !== undefined) fields.category = label('category', input.category);
  if (input.genre !== undefined) fields.genre = label('genre', input.genre);
  const custom = input.customization;
  if (custom) {
    if (custom.tone !== undefined) fields.tone = custom.tone;
    if (custom.audience !== undefined) fields.audience = custom.audience;
    if (custom.language !== undefined) fields.language = language(custom.language);
  }
  return fields;
}

interface StoryState {
  authorId: string;
  status: StoryStatus;
  content: string;
}

/** A published story is public; a draft or an archived one is its author's alone. */
export function canRead(story: Pick<StoryState, 'authorId' | 'status'>, userId: string | null): boolean {
  return story.status === 'PUBLISHED' || (userId !== null && story.authorId === userId);
}

export function assertChangeable(story: StoryState): void {
  if (story.status === 'ARCHIVED') throw userError('STORY_ARCHIVED', 'An archived story cannot change', 'id');
}

export function assertPublishable(story: StoryState): void {
  if (story.status === 'PUBLISHED') throw userError('ALREADY_PUBLISHED', 'This story is already published', 'id');
  assertChangeable(story);
  if (!story.content.trim()) throw userError('EMPTY_CONTENT', 'Write the story before publishing it', 'content');
}

export function assertArchivable(story: StoryState): void {
  if (story.status === 'ARCHIVED') throw userError('ALREADY_ARCHIVED', 'This story is already archived', 'id');
}

export function assertAnalysable(story: StoryState): void {
  assertChangeable(story);
  if (!story.content.trim()) throw userError('EMPTY_CONTENT', 'There is nothing to analyse yet', 'content');
}

/** What a plan allows in this subgraph's projection; null fields are unlimited. */
export interface StoryEntitlements {
  tier: string;
  storiesPerMonth: number | null;
}

/**
 * Until billing's subscription.created reaches this subgraph (moments after sign-up), a user
 * has what every account starts with: billing's FREE plan (seeded in its first migration).
 */
export const STARTING_ENTITLEMENTS: StoryEntitlements = { tier: 'FREE', storiesPerMonth: 3 };

/** Creating one more story this month: PLAN_LIMIT_REACHED when the plan's monthly count is used up. */
export function assertStoryAllowed(entitlements: StoryEntitlements, createdThisMonth: number): void {
  const limit = entitlements.storiesPerMonth;
  if (limit === null || createdThisMonth < limit) return;
  const message =
    limit === 0
      ? 'Your plan does not allow new stories'
      : `Your ${entitlements.tier} plan allows ${limit} ${limit === 1 ? 'story' : 'stories'} a month; upgrade to write more`;
  throw userError('PLAN_LIMIT_REACHED', message);
}

/** Plan months are UTC calendar months, as billing counts them. */
export function monthStart(at: Date): Date {
  return new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), 1));
}

/** Identifies the text an analysis is of: publishing does not analyse the same text twice. */
export function contentHash(story: { title: string; content: string; language: string | null }): string {
  return createHash('sha256')
    .update(JSON.stringify([story.title, story.content, story.language]))
    .digest('base64url');
}

/**
 * A character's id: a name-based UUID (RFC 9562 version 5 layout over SHA-1) of the story and
 * the name, so analysing the story again keeps the ids of the characters found again, and
 * whatever other domains hold (a roleplay template's character) still points at them.
 */
export function characterId(storyId: string, name: string): string {
  const hash = createHash('sha1').update(`${storyId}\u0000${name.trim().toLowerCase()}`).digest();
  hash[6] = (hash[6]! & 0x0f) | 0x50;
  hash[8] = (hash[8]! & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** A publish analyses the story unless this very text was analysed, or is being. */
export function publishNeedsAnalysis(analysis: { status: AnalysisStatus; contentHash: string } | null, hash: string): boolean {
  return !analysis || analysis.contentHash !== hash || analysis.status === 'FAILED';
}
