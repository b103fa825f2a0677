import { z } from 'zod';
import type { Category, Channel } from '../preferences.rules.js';
import collaborationCompleted from './defaults/collaboration.completed.json' with { type: 'json' };
import invitationAccepted from './defaults/collaboration.invitation.accepted.json' with { type: 'json' };
import invitationSent from './defaults/collaboration.invitation.sent.json' with { type: 'json' };
import submissionCompleted from './defaults/collaboration.submission.completed.json' with { type: 'json' };
import phoneVerification from './defaults/phone.verification.json' with { type: 'json' };
import narrationCompleted from './defaults/narration.generation.completed.json' with { type: 'json' };
import analysisCompleted from './defaults/story.analysis.completed.json' with { type: 'json' };
import storyPublished from './defaults/story.published.json' with { type: 'json' };
import subscriptionUpgraded from './defaults/subscription.upgraded.json' with { type: 'json' };
import usageLimitReached from './defaults/usage.limit.reached.json' with { type: 'json' };
import userRegistered from './defaults/user.registered.json' with { type: 'json' };
import videoCompleted from './defaults/video.generation.completed.json' with { type: 'json' };
import videoFailed from './defaults/video.generation.failed.json' with { type: 'json' };
import voiceCloned from './defaults/voice.cloned.json' with { type: 'json' };
import { inMemoryTemplateStore } from './memory.store.js';
import type { TemplateDefinition, TemplateStore } from './template.js';
import { validateTemplate } from './validate.js';

/**
 * The built-in templates: what a person receives until an admin stores a version of their own.
 * Each key is the event it tells about (the event catalog's type), so the consumer finds the
 * template by the event's type. The texts are data (defaults/<key>.json, English and French,
 * EMAIL subject/text/HTML and SMS), JSON imports so the build copies them to dist.
 *
 * `string` values are escaped in HTML; `url` values must be http(s) (the names end in Link);
 * `date` values are Dates or ISO-8601 strings; `values` lists what a select branches on.
 */
export type VariableType = 'string' | 'number' | 'date' | 'url';

export interface TemplateVariable {
  readonly name: string;
  readonly type: VariableType;
  readonly values?: readonly string[];
}

export interface DefaultTemplateKey {
  readonly key: string;
  readonly category: Category;
  /** Who receives it, from the event's point of view. */
  readonly recipient: 'invitee' | 'author' | 'owner' | 'user';
  readonly variables: readonly TemplateVariable[];
}

const storyTitle = { name: 'storyTitle', type: 'string' } as const;
const characterName = { name: 'characterName', type: 'string' } as const;
const participantName = { name: 'participantName', type: 'string' } as const;
const storyLink = { name: 'storyLink', type: 'url' } as const;

export const DEFAULT_TEMPLATE_KEYS = [
  {
    key: 'collaboration.invitation.sent',
    category: 'COLLABORATION',
    recipient: 'invitee',
    variables: [
      { name: 'inviteeName', type: 'string' },
      { name: 'inviterName', type: 'string' },
      storyTitle,
      characterName,
      { name: 'inviteLink', type: 'url' },
      { name: 'expiresAt', type: 'date' },
    ],
  },
  { key: 'collaboration.invitation.accepted', category: 'COLLABORATION', recipient: 'author', variables: [participantName, storyTitle, characterName, storyLink] },
  { key: 'collaboration.submission.completed', category: 'COLLABORATION', recipient: 'author', variables: [participantName, storyTitle, characterName, storyLink] },
  {
    key: 'collaboration.completed',
    category: 'COLLABORATION',
    recipient: 'author',
    variables: [storyTitle, { name: 'participantCount', type: 'number' }, storyLink],
  },
  { key: 'story.published', category: 'STORY', recipient: 'author', variables: [storyTitle, { name: 'publishedAt', type: 'date' }, storyLink] },
  {
    key: 'story.analysis.completed',
    category: 'STORY',
    recipient: 'author',
    variables: [storyTitle, { name: 'readingTimeMinutes', type: 'number' }, storyLink],
  },
  { key: 'narration.generation.completed', category: 'NARRATION', recipient: 'owner', variables: [storyTitle, { name: 'listenLink', type: 'url' }] },
  {
    key: 'voice.cloned',
    category: 'NARRATION',
    recipient: 'owner',
    variables: [
      { name: 'sampleCount', type: 'number' },
      { name: 'voiceLink', type: 'url' },
    ],
  },
  { key: 'video.generation.completed', category: 'VIDEO', recipient: 'owner', variables: [storyTitle, { name: 'videoLink', type: 'url' }] },
  { key: 'video.generation.failed', category: 'VIDEO', recipient: 'owner', variables: [storyTitle, storyLink] },
  {
    key: 'user.registered',
    category: 'ACCOUNT',
    recipient: 'user',
    variables: [
      { name: 'displayName', type: 'string' },
      { name: 'appLink', type: 'url' },
    ],
  },
  {
    key: 'subscription.upgraded',
    category: 'BILLING',
    recipient: 'user',
    variables: [
      // The tier the account moved to (billing's PlanTier); each language names the plans its way.
      { name: 'plan', type: 'string', values: ['SILVER', 'GOLD', 'PLATINUM'] },
      { name: 'billingLink', type: 'url' },
    ],
  },
  {
    key: 'usage.limit.reached',
    category: 'BILLING',
    recipient: 'user',
    variables: [
      // billing's MonthlyMetric: each has its own plural ("1 story", "3 videos").
      { name: 'metric', type: 'string', values: ['storiesCreated', 'videosGenerated'] },
      { name: 'limit', type: 'number' },
      { name: 'upgradeLink', type: 'url' },
    ],
  },
  // Not an event: the code that proves a person holds the phone number they gave.
  { key: 'phone.verification', category: 'ACCOUNT', recipient: 'user', variables: [{ name: 'code', type: 'string' }] },
] as const satisfies readonly DefaultTemplateKey[];

export type DefaultTemplateKeyName = (typeof DEFAULT_TEMPLATE_KEYS)[number]['key'];

/** The languages every default is written in; the fallback chain ends in the first. */
export const DEFAULT_LOCALES = ['en', 'fr'] as const;

const lines = z.union([z.string(), z.array(z.string())]).transform((v) => (Array.isArray(v) ? v.join('\n') : v));
const localeTexts = <T extends z.ZodRawShape>(shape: T) => z.record(z.string(), z.object(shape).strict());
const DefaultsFile = z
  .object({
    key: z.string(),
    EMAIL: localeTexts({ subject: z.string(), body: lines, html: lines }),
    SMS: localeTexts({ body: z.string() }),
  })
  .strict();

const FILES: unknown[] = [
  invitationSent,
  invitationAccepted,
  submissionCompleted,
  collaborationCompleted,
  storyPublished,
  analysisCompleted,
  narrationCompleted,
  voiceCloned,
  videoCompleted,
  videoFailed,
  userRegistered,
  subscriptionUpgraded,
  usageLimitReached,
  phoneVerification,
];

let loaded: readonly TemplateDefinition[] | null = null;

/**
 * Every default as a version-0 INLINE definition. Checked once, on first use, with the same
 * validation an upsert gets, and against DEFAULT_TEMPLATE_KEYS: a broken default throws at
 * start-up rather than when the first person should hear about something.
 */
export function defaultTemplates(): TemplateDefinition[] {
  loaded ??= load();
  return loaded.map((d) => ({ ...d }));
}

/** The defaults behind the TemplateStore port, for resolveTemplate. */
export function defaultTemplateStore(): TemplateStore {
  return inMemoryTemplateStore(defaultTemplates());
}

function load(): TemplateDefinition[] {
  const definitions: TemplateDefinition[] = [];
  const problems: string[] = [];
  const files = FILES.map((file) => DefaultsFile.parse(file));
  for (const { key } of DEFAULT_TEMPLATE_KEYS) {
    const file = files.find((f) => f.key === key);
    if (!file) {
      problems.push(`${key}: no defaults/${key}.json`);
      continue;
    }
    for (const locale of DEFAULT_LOCALES) {
      const email = file.EMAIL[locale];
      const sms = file.SMS[locale];
      if (!email || !sms) problems.push(`${key}: no ${!email ? 'EMAIL' : 'SMS'} text in ${locale}`);
      if (email) definitions.push(builtIn(key, 'EMAIL', locale, email));
      if (sms) definitions.push(builtIn(key, 'SMS', locale, sms));
    }
  }
  for (const file of files) if (!DEFAULT_TEMPLATE_KEYS.some((k) => k.key === file.key)) problems.push(`${file.key}: not in DEFAULT_TEMPLATE_KEYS`);
  for (const d of definitions) for (const p of validateTemplate(d)) problems.push(`${d.key} ${d.channel} ${d.locale} ${p.field}: ${p.message}`);
  if (problems.length > 0) throw new Error(`Invalid default notification templates:\n${problems.join('\n')}`);
  return definitions;
}

function builtIn(key: string, channel: Channel, locale: string, texts: { subject?: string; body: string; html?: string }): TemplateDefinition {
  return { key, channel, locale, version: 0, ...texts, source: 'INLINE' };
}
