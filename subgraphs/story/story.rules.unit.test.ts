import { describe, expect, it } from 'vitest';
import { domainErrorOf } from '../../test/support/domain-error.js';
import {
  assertAnalysable,
  assertArchivable,
  assertPublishable,
  assertStoryAllowed,
  canRead,
  characterId,
  contentHash,
  MAX_CONTENT_LENGTH,
  monthStart,
  publishNeedsAnalysis,
  STARTING_ENTITLEMENTS,
  storyFields,
  type StoryStatus,
} from './story.rules.js';

const AUTHOR = '6f1c2a52-4a59-4e8e-9d1b-0d6f3c1e2a10';
const OTHER = '0b7e8d3c-2f4a-4b6c-8e9d-1a2b3c4d5e6f';
const story = (status: StoryStatus, content = 'Once upon a time.') => ({ authorId: AUTHOR, status, content });

describe('storyFields', () => {
  it('trims the title and labels and keeps the content as written', () => {
    expect(storyFields({ title: '  The Fox ', content: '  Text\n', category: ' bedtime ', genre: '' }, 'create')).toEqual({
      title: 'The Fox',
      content: '  Text\n',
      category: 'bedtime',
      genre: null,
    });
  });

  it('refuses an empty or overlong title and an overlong content, naming the field', () => {
    expect(domainErrorOf(() => storyFields({ title: '   ', content: 'x' }, 'create'))).toBe('INVALID_INPUT:title');
    expect(domainErrorOf(() => storyFields({ title: 'x'.repeat(201), content: 'x' }, 'create'))).toBe('INVALID_INPUT:title');
    expect(domainErrorOf(() => storyFields({ title: 'ok', content: 'x'.repeat(MAX_CONTENT_LENGTH + 1) }, 'create'))).toBe('INVALID_INPUT:content');
    expect(domainErrorOf(() => storyFields({ title: 'ok', content: 'x'.repeat(MAX_CONTENT_LENGTH) }, 'create'))).toBe('ok');
    expect(domainErrorOf(() => storyFields({ title: 'ok', content: '', category: 'c'.repeat(51) }, 'create'))).toBe('INVALID_INPUT:category');
    expect(domainErrorOf(() => storyFields({ title: 'ok', content: 'a\u0000b' }, 'create'))).toBe('INVALID_INPUT:content');
    expect(domainErrorOf(() => storyFields({ title: 'o\u0000k', content: '' }, 'create'))).toBe('INVALID_INPUT:title');
  });

  it('changes only what an update gives; null clears a label but not the title', () => {
    expect(storyFields({ genre: null }, 'update')).toEqual({ genre: null });
    expect(storyFields({ title: null, content: null }, 'update')).toEqual({});
    expect(domainErrorOf(() => storyFields({ title: '' }, 'update'))).toBe('INVALID_INPUT:title');
  });

  it('canonicalises the language tag and refuses one that is not BCP 47', () => {
    expect(storyFields({ customization: { language: 'pt-br', tone: 'DARK' } }, 'update')).toEqual({ language: 'pt-BR', tone: 'DARK' });
    expect(domainErrorOf(() => storyFields({ customization: { language: 'not a language' } }, 'update'))).toBe('INVALID_INPUT:customization.language');
  });
});

describe('who reads and what changes', () => {
  it('lets anyone read a published story and only the author a draft or archived one', () => {
    expect(canRead(story('PUBLISHED'), null)).toBe(true);
    expect(canRead(story('DRAFT'), AUTHOR)).toBe(true);
    expect(canRead(story('DRAFT'), OTHER)).toBe(false);
    expect(canRead(story('ARCHIVED'), null)).toBe(false);
  });

  it('publishes a draft with text only', () => {
    expect(domainErrorOf(() => assertPublishable(story('DRAFT')))).toBe('ok');
    expect(domainErrorOf(() => assertPublishable(story('DRAFT', '  \n')))).toBe('EMPTY_CONTENT:content');
    expect(domainErrorOf(() => assertPublishable(story('PUBLISHED')))).toBe('ALREADY_PUBLISHED:id');
    expect(domainErrorOf(() => assertPublishable(story('ARCHIVED')))).toBe('STORY_ARCHIVED:id');
  });

  it('archives once, and analyses neither an archived nor an empty story', () => {
    expect(domainErrorOf(() => assertArchivable(story('PUBLISHED')))).toBe('ok');
    expect(domainErrorOf(() => assertArchivable(story('ARCHIVED')))).toBe('ALREADY_ARCHIVED:id');
    expect(domainErrorOf(() => assertAnalysable(story('ARCHIVED')))).toBe('STORY_ARCHIVED:id');
    expect(domainErrorOf(() => assertAnalysable(story('DRAFT', '')))).toBe('EMPTY_CONTENT:content');
  });
});

describe('the monthly story limit', () => {
  it('allows stories up to the limit, none with a zero limit, any number when unlimited', () => {
    expect(domainErrorOf(() => assertStoryAllowed(STARTING_ENTITLEMENTS, 2))).toBe('ok');
    expect(domainErrorOf(() => assertStoryAllowed(STARTING_ENTITLEMENTS, 3))).toBe('PLAN_LIMIT_REACHED:null');
    expect(domainErrorOf(() => assertStoryAllowed({ tier: 'FREE', storiesPerMonth: 0 }, 0))).toBe('PLAN_LIMIT_REACHED:null');
    expect(domainErrorOf(() => assertStoryAllowed({ tier: 'PLATINUM', storiesPerMonth: null }, 10_000))).toBe('ok');
  });

  it('counts UTC calendar months', () => {
    expect(monthStart(new Date('2026-12-01T00:30:00+01:00'))).toEqual(new Date('2026-11-01T00:00:00Z'));
  });
});

describe('analysis requests', () => {
  it('gives a character the same id for the same story and name, whatever its case', () => {
    const id = characterId(AUTHOR, 'Mira');
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(characterId(AUTHOR, ' mira ')).toBe(id);
    expect(characterId(OTHER, 'Mira')).not.toBe(id);
    expect(characterId(AUTHOR, 'Tom')).not.toBe(id);
  });

  it('has a publish analyse new text or text whose analysis failed, not text already analysed or under way', () => {
    const text = { title: 'T', content: 'C', language: null };
    const hash = contentHash(text);
    expect(hash).not.toBe(contentHash({ ...text, content: 'C.' }));
    expect(publishNeedsAnalysis(null, hash)).toBe(true);
    expect(publishNeedsAnalysis({ status: 'COMPLETED', contentHash: hash }, hash)).toBe(false);
    expect(publishNeedsAnalysis({ status: 'RUNNING', contentHash: hash }, hash)).toBe(false);
    expect(publishNeedsAnalysis({ status: 'FAILED', contentHash: hash }, hash)).toBe(true);
    expect(publishNeedsAnalysis({ status: 'COMPLETED', contentHash: 'older' }, hash)).toBe(true);
  });
});
