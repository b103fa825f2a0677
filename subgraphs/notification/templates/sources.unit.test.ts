import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveBody, UrlCache, withResolvedBody, type SourceOptions } from './sources.js';
import { TemplateError, type TemplateDefinition } from './template.js';

let base: string;
let options: SourceOptions;

const fileTemplate = (sourceRef: string): TemplateDefinition => ({
  key: 'story.published',
  channel: 'SMS',
  locale: 'en',
  version: 2,
  body: '',
  source: 'FILE',
  sourceRef,
});

const codeOf = (promise: Promise<unknown>) =>
  promise.then(
    () => null,
    (error: unknown) => (error instanceof TemplateError ? error.code : error),
  );

beforeAll(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'templates-'));
  const dir = path.join(base, 'templates');
  await mkdir(path.join(dir, 'story'), { recursive: true });
  await writeFile(path.join(dir, 'story', 'published.en.txt'), 'Your story “{storyTitle}” is published: {storyLink}');
  await writeFile(path.join(dir, 'big.txt'), 'x'.repeat(2_000));
  await writeFile(path.join(dir, 'binary.bin'), Buffer.from([0xff, 0xfe, 0x00, 0xc3]));
  await writeFile(path.join(base, 'secret.txt'), 'outside the folder');
  await symlink(path.join(base, 'secret.txt'), path.join(dir, 'link-out.txt'));
  await symlink(path.join(dir, 'story', 'published.en.txt'), path.join(dir, 'link-in.txt'));
  options = { templatesDir: dir, cacheTtlMs: 60_000, maxBytes: 1_024, timeoutMs: 1_000, cache: new UrlCache() };
});

afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

describe('resolveBody: INLINE', () => {
  it('is the definition’s own body', async () => {
    expect(await resolveBody({ ...fileTemplate(''), source: 'INLINE', body: 'hello' }, options)).toBe('hello');
  });
});

describe('resolveBody: FILE', () => {
  it('reads a file under the templates folder', async () => {
    expect(await resolveBody(fileTemplate('story/published.en.txt'), options)).toBe('Your story “{storyTitle}” is published: {storyLink}');
    expect(await resolveBody(fileTemplate('./story/../story/published.en.txt'), options)).toContain('is published');
    expect((await withResolvedBody(fileTemplate('story/published.en.txt'), options)).body).toContain('{storyTitle}');
  });

  it('follows a symlink that stays inside the folder', async () => {
    expect(await resolveBody(fileTemplate('link-in.txt'), options)).toContain('is published');
  });

  it.each(['../secret.txt', 'story/../../secret.txt', '..', '/etc/passwd', path.join('..', 'templates', '..', 'secret.txt'), 'story/\0.txt', ''])(
    'refuses %j, which leaves the folder',
    async (ref) => {
      expect(await codeOf(resolveBody(fileTemplate(ref), options))).toBe('SOURCE_REFUSED');
    },
  );

  it('refuses a symlink that points outside the folder', async () => {
    const error = await resolveBody(fileTemplate('link-out.txt'), options).catch((e: TemplateError) => e);
    expect(error).toMatchObject({ code: 'SOURCE_REFUSED', message: expect.stringContaining('resolves outside the templates folder') });
  });

  it('refuses a file over the size cap, a folder, and bytes that are not UTF-8', async () => {
    expect(await codeOf(resolveBody(fileTemplate('big.txt'), options))).toBe('SOURCE_REFUSED');
    expect(await codeOf(resolveBody(fileTemplate('story'), options))).toBe('SOURCE_REFUSED');
    expect(await codeOf(resolveBody(fileTemplate('binary.bin'), options))).toBe('SOURCE_REFUSED');
  });

  it('says a missing file is unavailable, not refused', async () => {
    expect(await codeOf(resolveBody(fileTemplate('story/nope.txt'), options))).toBe('SOURCE_UNAVAILABLE');
  });
});
