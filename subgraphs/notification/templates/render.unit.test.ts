import { describe, expect, it } from 'vitest';
import { renderTemplate, validateTemplate } from './render.js';
import { TemplateError, type TemplateDefinition } from './template.js';

const email = (parts: Partial<TemplateDefinition>): TemplateDefinition => ({
  key: 'test.message',
  channel: 'EMAIL',
  locale: 'en',
  version: 1,
  subject: 'Hello',
  body: 'Body',
  source: 'INLINE',
  ...parts,
});
const sms = (body: string, locale = 'en'): TemplateDefinition => ({ key: 'test.sms', channel: 'SMS', locale, version: 1, body, source: 'INLINE' });

const errorOf = (work: () => unknown) => {
  try {
    work();
  } catch (error) {
    if (error instanceof TemplateError) return error;
    throw error;
  }
  throw new Error('expected a TemplateError');
};

// Intl separates French thousands with a narrow no-break space (U+202F) and puts a no-break
// space before some punctuation; compare with ordinary spaces.
const spaces = (s: string) => s.replace(/[\u202f\u00a0]/g, ' ');

describe('renderTemplate: plurals', () => {
  const def = sms('{count, plural, =0 {no stories} one {# story} other {# stories}}');
  const defFr = sms('{count, plural, =0 {aucune histoire} one {# histoire} other {# histoires}}', 'fr');

  it.each([
    [0, 'no stories', 'aucune histoire'],
    [1, '1 story', '1 histoire'],
    [2, '2 stories', '2 histoires'],
    [1234, '1,234 stories', '1 234 histoires'],
  ])('%d -> %s / %s', (count, en, fr) => {
    expect(renderTemplate(def, { count }, { locale: 'en' }).text).toBe(en);
    expect(spaces(renderTemplate(defFr, { count }, { locale: 'fr' }).text)).toBe(fr);
  });

  it('uses the language’s own plural rules: 0 is "one" in French, "other" in English', () => {
    const en = sms('{n, plural, one {one} other {other}}');
    const fr = sms('{n, plural, one {one} other {other}}', 'fr');
    expect(renderTemplate(en, { n: 0 }, { locale: 'en' }).text).toBe('other');
    expect(renderTemplate(fr, { n: 0 }, { locale: 'fr' }).text).toBe('one');
  });
});

describe('renderTemplate: dates and numbers per locale', () => {
  const def = sms('{when, date, long} {when, time, short} · {amount, number} · {amount}');
  const when = new Date('2025-03-01T18:30:00Z');

  it('formats a Date in English and French differently', () => {
    expect(spaces(renderTemplate(def, { when, amount: 1234.5 }, { locale: 'en' }).text)).toBe('March 1, 2025 6:30 PM · 1,234.5 · 1,234.5');
    expect(spaces(renderTemplate(def, { when, amount: 1234.5 }, { locale: 'fr' }).text)).toBe('1 mars 2025 18:30 · 1 234,5 · 1 234,5');
  });

  it('takes an ISO-8601 string where the template marks a date', () => {
    const text = renderTemplate(def, { when: '2025-03-01T18:30:00Z', amount: 1 }, { locale: 'fr' }).text;
    expect(spaces(text)).toBe('1 mars 2025 18:30 · 1 · 1');
  });

  it('renders dates in the given time zone, UTC when none is given', () => {
    const late = sms('{when, date, long} {when, time, short}');
    expect(renderTemplate(late, { when: '2025-03-01T23:30:00Z' }, { locale: 'en-GB' }).text).toBe('1 March 2025 23:30');
    expect(renderTemplate(late, { when: '2025-03-01T23:30:00Z' }, { locale: 'en-GB', timeZone: 'Europe/Paris' }).text).toBe('2 March 2025 00:30');
  });

  it('formats by the person’s locale, not the template’s: en-GB orders the day first', () => {
    const us = renderTemplate(sms('{when, date, short}'), { when }, { locale: 'en-US' }).text;
    const gb = renderTemplate(sms('{when, date, short}'), { when }, { locale: 'en-GB' }).text;
    expect([us, gb]).toEqual(['3/1/25', '01/03/25']);
  });

  it('formats a Date given to a plain {argument} per locale too', () => {
    expect(renderTemplate(sms('at {when}'), { when }, { locale: 'en' }).text).toBe('at Mar 1, 2025, 6:30 PM');
    expect(spaces(renderTemplate(sms('à {when}', 'fr'), { when }, { locale: 'fr' }).text)).toBe('à 1 mars 2025, 18:30');
  });

  it('refuses a value that is not a date where the template wants one, naming it', () => {
    const error = errorOf(() => renderTemplate(def, { when: 'next tuesday', amount: 1 }, { locale: 'en' }));
    expect(error.code).toBe('INVALID_VARIABLE');
    expect(error.variables).toEqual(['when']);
    expect(errorOf(() => renderTemplate(def, { when, amount: 'lots' }, { locale: 'en' })).variables).toEqual(['amount']);
  });

  it('refuses a time zone that does not exist', () => {
    expect(() => renderTemplate(def, { when, amount: 1 }, { locale: 'en', timeZone: 'Mars/Olympus' })).toThrow(RangeError);
  });
});

describe('renderTemplate: variables', () => {
  it('names every missing variable, from every part, even one in an untaken branch', () => {
    const def = email({ subject: 'Hi {name}', body: '{count, plural, one {# by {author}} other {#}}', html: '<p>{greeting}</p>' });
    const error = errorOf(() => renderTemplate(def, { count: 2, author: null }, { locale: 'en' }));
    expect(error.code).toBe('MISSING_VARIABLE');
    expect(error.variables).toEqual(['name', 'count', 'author', 'greeting'].filter((n) => n !== 'count'));
    expect(error.message).toContain('test.message EMAIL en v1 needs name, author, greeting');
  });

  it('does not mistake an inherited property for a given variable', () => {
    expect(errorOf(() => renderTemplate(sms('{constructor}'), {}, { locale: 'en' })).variables).toEqual(['constructor']);
  });

  it('selects on a string', () => {
    const def = sms('{plan, select, GOLD {Gold} other {{plan}}}');
    expect(renderTemplate(def, { plan: 'GOLD' }, { locale: 'en' }).text).toBe('Gold');
    expect(renderTemplate(def, { plan: 'TIN' }, { locale: 'en' }).text).toBe('TIN');
  });

  it('keeps a newline a value brings out of the subject, where it would start a header', () => {
    const out = renderTemplate(email({ subject: 'About {title}' }), { title: 'x\r\nBcc: victim@example.com' }, { locale: 'en' });
    expect(out.subject).toBe('About x Bcc: victim@example.com');
  });
});

describe('renderTemplate: HTML', () => {
  const name = '<script>alert(1)</script> & "x"';
  const def = email({
    subject: 'From {name}',
    body: 'Hello {name}, see {inviteLink}',
    html: '<p class="greeting">Hello <b>{name}</b> &amp; welcome</p><a href="{inviteLink}" title="{name}">Open</a>',
  });

  it('escapes every variable in the HTML, keeps the template’s markup, and leaves text and subject as written', () => {
    const out = renderTemplate(def, { name, inviteLink: 'https://example.com/i?a=1&b=2' }, { locale: 'en' });
    expect(out.html).toBe(
      '<p class="greeting">Hello <b>&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot;</b> &amp; welcome</p>' +
        '<a href="https://example.com/i?a=1&amp;b=2" title="&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot;">Open</a>',
    );
    expect(out.text).toBe(`Hello ${name}, see https://example.com/i?a=1&b=2`);
    expect(out.subject).toBe(`From ${name}`);
    expect(out.html).not.toContain('<script>');
  });

  it('escapes single quotes too, for attributes quoted with them', () => {
    const out = renderTemplate(email({ html: "<img alt='Photo of {name}' />" }), { name: "x' onerror='alert(1)" }, { locale: 'en' });
    expect(out.html).toBe("<img alt='Photo of x&#39; onerror=&#39;alert(1)' />");
  });

  it("refuses a single-quoted attribute that opens with a variable: ICU reads '{ as a quotation", () => {
    expect(validateTemplate(email({ html: "<img alt='{name}'>" }))[0]?.message).toContain('{name} is quoted text');
    // and one that closes right before '>', which ICU also reads as a quotation
    expect(validateTemplate(email({ html: "<img alt='Photo of {name}'>" }))[0]?.message).toContain('right before < or >');
    const french = validateTemplate(email({ locale: 'fr', html: "<p>l'<b>{name}</b></p>" })).map((p) => p.message);
    expect(french.join('\n')).toContain('right before < or >');
  });

  it.each(['javascript:alert(1)', 'JavaScript:alert(1)', ' javascript:alert(1)', 'data:text/html,<script>alert(1)</script>', '//evil.example', 'not a url'])(
    'refuses %j as a link variable, in the HTML and in the text',
    (inviteLink) => {
      const error = errorOf(() => renderTemplate(def, { name: 'Ada', inviteLink }, { locale: 'en' }));
      expect(error.code).toBe('INVALID_VARIABLE');
      expect(error.variables).toEqual(['inviteLink']);
      // An SMS has no HTML, but the name still marks the link.
      expect(errorOf(() => renderTemplate(sms('Open {inviteLink}'), { inviteLink }, { locale: 'en' })).variables).toEqual(['inviteLink']);
    },
  );

  it('treats a variable that opens an href as a link whatever its name', () => {
    const def2 = email({ html: '<a href="{target}">go</a>' });
    expect(errorOf(() => renderTemplate(def2, { target: 'javascript:alert(1)' }, { locale: 'en' })).variables).toEqual(['target']);
    expect(renderTemplate(def2, { target: 'http://example.com' }, { locale: 'en' }).html).toBe('<a href="http://example.com">go</a>');
  });

  it('allows a variable later in a URL whose scheme the template fixes', () => {
    const def2 = email({ html: '<a href="https://app.example.com/s/{id}">go</a>' });
    expect(renderTemplate(def2, { id: 'a"b' }, { locale: 'en' }).html).toBe('<a href="https://app.example.com/s/a&quot;b">go</a>');
  });
});

describe('validateTemplate', () => {
  it('accepts a well-formed template', () => {
    expect(validateTemplate(email({ subject: 'Hi {name}', body: '{n, plural, one {#} other {#}}', html: '<p>{name}</p>' }))).toEqual([]);
  });

  it.each([
    ['an unclosed argument', 'Hello {name'],
    ['a plural without other', '{n, plural, one {one}}'],
    ['an unknown format', '{n, money}'],
    ['an empty argument', 'Hello {}'],
  ])('refuses invalid ICU: %s', (_, body) => {
    const problems = validateTemplate(email({ body }));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ field: 'body', message: expect.stringMatching(/^invalid ICU message syntax .* at line 1, column \d+$/) });
  });

  it('refuses a placeholder an apostrophe turned into text', () => {
    expect(validateTemplate(email({ locale: 'fr', body: "Voir l'{storyTitle}" }))).toEqual([
      { field: 'body', message: expect.stringContaining('{storyTitle} is quoted text') },
    ]);
    expect(validateTemplate(email({ locale: 'fr', body: 'Voir l’{storyTitle}' }))).toEqual([]);
  });

  it.each([
    ['<a href={link}>x</a>', 'unquoted'],
    ['<a onclick="go({id})">x</a>', 'onclick attribute, which is code'],
    ['<p style="color: {colour}">x</p>', 'style attribute'],
    ['<style>p.x</style><p {attr}>x</p>', 'inside a tag'],
    ['<style>.a:after</style><style>{css}</style>', 'inside <style>'],
    ['<script>var x = 1</script>', '<script> has no place'],
    ['<a href="java{rest}">x</a>', 'does not fix the URL'],
    ['<!-- {note} -->', 'comment'],
    ['<p class="{cls}', 'ends inside a tag'],
  ])('refuses HTML %j where escaping cannot protect a value', (html, message) => {
    const problems = validateTemplate(email({ html }));
    expect(problems.map((p) => p.field)).toContain('html');
    expect(problems.map((p) => p.message).join('\n')).toContain(message);
  });

  it('checks the definition around the message', () => {
    const fields = (d: TemplateDefinition) => validateTemplate(d).map((p) => p.field);
    expect(fields(email({ subject: ' ' }))).toEqual(['subject']);
    expect(fields({ ...sms('x'), subject: 'no' })).toEqual(['subject']);
    expect(fields(email({ key: 'Not A Key', locale: 'fr-ca', version: -1 }))).toEqual(['key', 'locale', 'version']);
    expect(fields(email({ source: 'FILE', sourceRef: '../secrets.txt', body: '' }))).toEqual(['sourceRef']);
    expect(fields(email({ source: 'FILE', sourceRef: 'invite/fr.txt', body: '' }))).toEqual([]);
    expect(fields(email({ source: 'URL', sourceRef: 'file:///etc/passwd', body: '' }))).toEqual(['sourceRef']);
    expect(fields(email({ source: 'URL', sourceRef: 'https://cdn.example.com/t.txt', body: '' }))).toEqual([]);
  });

  it('is what render refuses too, for a template that was never validated', () => {
    expect(errorOf(() => renderTemplate(email({ body: 'Hello {name' }), { name: 'x' }, { locale: 'en' })).code).toBe('INVALID_TEMPLATE');
    expect(errorOf(() => renderTemplate(email({ html: '<a href={x}>' }), { x: 'x' }, { locale: 'en' })).code).toBe('INVALID_TEMPLATE');
  });
});

describe('compiled cache', () => {
  it('recompiles when the source changes under the same key and version (a URL body, say)', () => {
    const a = sms('first {x}');
    expect(renderTemplate(a, { x: 1 }, { locale: 'en' }).text).toBe('first 1');
    expect(renderTemplate({ ...a, body: 'second {x}' }, { x: 1 }, { locale: 'en' }).text).toBe('second 1');
    expect(renderTemplate(a, { x: 2 }, { locale: 'fr' }).text).toBe('first 2');
  });
});
