import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestDatabase, TEST_SERVER_URL } from '../../test/support/database.js';
import { createLogger } from '../log.js';
import { provisionRoles, roleSettingsFrom } from './provision.js';

describe('roleSettingsFrom', () => {
  it("reads each subgraph's role and password from SUBGRAPH_<NAME>_DATABASE_URL", () => {
    const env = {
      SUBGRAPH_STORY_DATABASE_URL: 'postgres://story_role:s%40cret%2Fpart@db:5432/storyloom',
      SUBGRAPH_BILLING_DATABASE_URL: 'postgresql://billing_role@db/storyloom',
    };
    expect(roleSettingsFrom(env, ['story', 'billing'])).toEqual([
      { schema: 'story', role: 'story_role', password: 's@cret/part' },
      { schema: 'billing', role: 'billing_role', password: null },
    ]);
  });

  it('names every missing or bad setting in one error', () => {
    const env = {
      SUBGRAPH_BILLING_DATABASE_URL: 'not a url',
      SUBGRAPH_IDENTITY_DATABASE_URL: 'mysql://identity@db/storyloom',
      SUBGRAPH_MEDIA_DATABASE_URL: 'postgres://Story-Role:pw@db/storyloom',
      SUBGRAPH_NOTIFICATION_DATABASE_URL: 'postgres://shared:one@db/storyloom',
      SUBGRAPH_COLLABORATION_DATABASE_URL: 'postgres://shared:two@db/storyloom',
      SUBGRAPH_ANALYTICS_DATABASE_URL: '',
    };
    let error: unknown;
    try {
      roleSettingsFrom(env, ['story', 'billing', 'identity', 'media', 'notification', 'collaboration', 'analytics']);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message.split('\n').map((line) => line.trim())).toEqual([
      'Cannot provision the database:',
      'SUBGRAPH_STORY_DATABASE_URL: required (postgres://<role>:<password>@host/db)',
      'SUBGRAPH_BILLING_DATABASE_URL: not a URL',
      'SUBGRAPH_IDENTITY_DATABASE_URL: must be a postgres:// URL',
      'SUBGRAPH_MEDIA_DATABASE_URL: the role must be lower-case letters, digits and _ (got "Story-Role")',
      'SUBGRAPH_ANALYTICS_DATABASE_URL: required (postgres://<role>:<password>@host/db)',
      'each subgraph needs a role of its own; shared: shared',
    ]);
  });

  it('refuses a URL without a role', () => {
    expect(() => roleSettingsFrom({ SUBGRAPH_STORY_DATABASE_URL: 'postgres://db:5432/storyloom' }, ['story'])).toThrow(
      'SUBGRAPH_STORY_DATABASE_URL: the role must be lower-case letters, digits and _ (got "")',
    );
  });
});

/** Whether a SCRAM-SHA-256 verifier from pg_authid was made from `password` (RFC 5802, 7677). */
function scramVerifies(verifier: string, password: string): boolean {
  const match = /^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$/.exec(verifier);
  if (!match) throw new Error(`not a SCRAM-SHA-256 verifier: ${verifier.slice(0, 16)}…`);
  const [, iterations, salt, storedKey] = match;
  const salted = pbkdf2Sync(password, Buffer.from(salt!, 'base64'), Number(iterations), 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  return createHash('sha256').update(clientKey).digest('base64') === storedKey;
}

describe('provisionRoles', () => {
  // Roles are cluster-wide: unique names, dropped after the file.
  const suffix = randomBytes(4).toString('hex');
  const storyRole = `sl_story_${suffix}`;
  const billingRole = `sl_billing_${suffix}`;
  const notificationRole = `sl_notification_${suffix}`;
  const mediaRole = `sl_media_${suffix}`;
  const analyticsRole = `sl_analytics_${suffix}`;
  const ourRoles = [storyRole, billingRole, notificationRole, mediaRole, analyticsRole];
  const logger = createLogger('silent');
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let admin: pg.Client;

  async function asRole<T>(role: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
    const url = new URL(db.url);
    url.username = role;
    url.password = '';
    const client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
    try {
      return await work(client);
    } finally {
      await client.end();
    }
  }

  const roleRow = async (role: string) =>
    (
      await admin.query<{ rolcanlogin: boolean; rolsuper: boolean; rolcreatedb: boolean; rolcreaterole: boolean; rolpassword: string | null }>(
        'select rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolpassword from pg_authid where rolname = $1',
        [role],
      )
    ).rows[0];

  const ownerOf = async (relation: string) =>
    (await admin.query<{ owner: string }>('select pg_get_userbyid(relowner) as owner from pg_class where oid = $1::regclass', [relation])).rows[0]?.owner;

  beforeAll(async () => {
    db = await createTestDatabase();
    admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    // What an earlier all-in-one run leaves: the superuser made the schema and its tables.
    await admin.query(`create schema story`);
    await admin.query(`create table story.legacy (id serial primary key, title text not null)`);
    await admin.query(`insert into story.legacy (title) values ('kept')`);
    await admin.query(`create view story.legacy_titles as select title from story.legacy`);
    await admin.query(`create materialized view story.legacy_count as select count(*) as n from story.legacy`);
    // Not tables: a sequence of its own, an enum, a domain, a function.
    await admin.query(`create sequence story.legacy_ticket`);
    await admin.query(`create type story.legacy_mood as enum ('calm')`);
    await admin.query(`create domain story.legacy_title as text check (value <> '')`);
    await admin.query(`create function story.legacy_shout(t text) returns text language sql as $$ select upper(t) $$`);
    // A right given to everyone, which provisioning takes back.
    await admin.query(`grant usage, create on schema story to public`);
    await provisionRoles(
      db.url,
      [
        { schema: 'story', role: storyRole, password: 'first-secret' },
        { schema: 'billing', role: billingRole, password: 'billing-secret' },
      ],
      logger,
    );
  });

  afterAll(async () => {
    try {
      const { rows } = await admin.query<{ rolname: string }>('select rolname from pg_roles where rolname = any($1)', [ourRoles]);
      // Cascade: a superuser's view may depend on a role's table.
      if (rows.length) await admin.query(`drop owned by ${rows.map((row) => `"${row.rolname}"`).join(', ')} cascade`);
    } finally {
      await admin.end();
      await db.drop();
      const server = new pg.Client({ connectionString: TEST_SERVER_URL });
      await server.connect();
      try {
        for (const role of ourRoles) await server.query(`drop role if exists "${role}"`);
      } finally {
        await server.end();
      }
    }
  });

  it('creates login roles with no other powers, each with its password', async () => {
    for (const [role, password] of [
      [storyRole, 'first-secret'],
      [billingRole, 'billing-secret'],
    ] as const) {
      const row = await roleRow(role);
      expect(row).toMatchObject({ rolcanlogin: true, rolsuper: false, rolcreatedb: false, rolcreaterole: false });
      expect(scramVerifies(row!.rolpassword!, password), role).toBe(true);
    }
    const { rows } = await admin.query<{ schema: string; owner: string }>(
      `select nspname as schema, pg_get_userbyid(nspowner) as owner from pg_namespace where nspname in ('story', 'billing') order by nspname`,
    );
    expect(rows).toEqual([
      { schema: 'billing', owner: billingRole },
      { schema: 'story', owner: storyRole },
    ]);
  });

  it('lets each role create and use tables in its own schema', async () => {
    await asRole(storyRole, async (client) => {
      await client.query('create table story.drafts (id int primary key, body text)');
      await client.query(`insert into story.drafts values (1, 'once upon a time')`);
      expect((await client.query('select body from story.drafts')).rows).toEqual([{ body: 'once upon a time' }]);
    });
    await asRole(billingRole, async (client) => {
      await client.query('create table billing.ledger (id int primary key, cents int)');
      await client.query('insert into billing.ledger values (1, 500)');
      expect((await client.query('select cents from billing.ledger')).rows).toEqual([{ cents: 500 }]);
    });
  });

  it("refuses a role reading or creating anything in another subgraph's schema", async () => {
    await asRole(billingRole, (client) => client.query('create table if not exists billing.invoices (id int)'));
    await asRole(storyRole, async (client) => {
      await expect(client.query('select * from billing.invoices')).rejects.toMatchObject({ code: '42501' });
      await expect(client.query('create table billing.stolen (id int)')).rejects.toMatchObject({ code: '42501' });
    });
    await asRole(billingRole, async (client) => {
      await expect(client.query('select * from story.legacy')).rejects.toMatchObject({ code: '42501' });
      await expect(client.query('insert into story.legacy (title) values ($1)', ['forged'])).rejects.toMatchObject({ code: '42501' });
      await expect(client.query('create table story.stolen (id int)')).rejects.toMatchObject({ code: '42501' });
    });
  });

  it('refuses a role creating a schema, or a table in public', async () => {
    await asRole(storyRole, async (client) => {
      await expect(client.query('create schema story_extra')).rejects.toMatchObject({ code: '42501' });
      await expect(client.query('create table public.loose (id int)')).rejects.toMatchObject({ code: '42501' });
    });
  });

  it("makes the role the owner of what the superuser had already made in its schema", async () => {
    expect(await ownerOf('story.legacy')).toBe(storyRole);
    expect(await ownerOf('story.legacy_id_seq')).toBe(storyRole);
    expect(await ownerOf('story.legacy_titles')).toBe(storyRole);
    expect(await ownerOf('story.legacy_count')).toBe(storyRole);
    await asRole(storyRole, async (client) => {
      // The insert takes its id from the sequence, which went with the table.
      await client.query(`insert into story.legacy (title) values ('added')`);
      expect((await client.query('select title from story.legacy_titles order by title')).rows).toEqual([{ title: 'added' }, { title: 'kept' }]);
      await client.query('refresh materialized view story.legacy_count');
      await client.query('alter table story.legacy add column subtitle text');
      // And the rest of what was there: the sequence, the types, the function.
      expect((await client.query(`select nextval('story.legacy_ticket') as n`)).rows[0].n).toBe('1');
      await client.query(`alter type story.legacy_mood add value 'stormy'`);
      await client.query(`alter domain story.legacy_title set default 'untitled'`);
      await client.query(`create or replace function story.legacy_shout(t text) returns text language sql as $$ select upper(t) || '!' $$`);
    });
  });

  it('refuses a URL whose role or password is not valid percent-encoding, naming it', () => {
    expect(() => roleSettingsFrom({ SUBGRAPH_STORY_DATABASE_URL: 'postgres://story:100%off@db/storyloom' }, ['story'])).toThrow(
      'SUBGRAPH_STORY_DATABASE_URL: the role or password is not valid percent-encoding (write % as %25)',
    );
  });

  it('runs again without harm, updating the password', async () => {
    const info = vi.spyOn(logger, 'info');
    await provisionRoles(db.url, [{ schema: 'story', role: storyRole, password: 'second-secret' }], logger);
    const row = await roleRow(storyRole);
    expect(scramVerifies(row!.rolpassword!, 'second-secret')).toBe(true);
    expect(scramVerifies(row!.rolpassword!, 'first-secret')).toBe(false);
    expect(row).toMatchObject({ rolcanlogin: true, rolsuper: false });
    expect(info).toHaveBeenCalledWith({ schema: 'story', role: storyRole, created: false, reowned: 0 }, 'subgraph role provisioned');
    expect(await ownerOf('story.legacy')).toBe(storyRole);
    await asRole(storyRole, async (client) => {
      expect((await client.query(`select title from story.legacy where title = 'kept'`)).rows).toEqual([{ title: 'kept' }]);
      expect((await client.query('select body from story.drafts')).rows).toEqual([{ body: 'once upon a time' }]);
    });
    info.mockRestore();
  });

  it('gives a role provisioned without a password none, and takes back powers an existing role had', async () => {
    await admin.query(`create role "${notificationRole}" nologin createdb createrole password 'old-secret'`);
    await provisionRoles(db.url, [{ schema: 'notification', role: notificationRole, password: null }], logger);
    expect(await roleRow(notificationRole)).toEqual({ rolcanlogin: true, rolsuper: false, rolcreatedb: false, rolcreaterole: false, rolpassword: null });
    await asRole(notificationRole, (client) => client.query('create table notification.outbox (id int)'));
    // A role that had a password loses it when provisioned without one.
    await provisionRoles(db.url, [{ schema: 'billing', role: billingRole, password: null }], logger);
    expect(await roleRow(billingRole)).toMatchObject({ rolcanlogin: true, rolpassword: null });
  });

  it('names the schema and role that failed, keeping the roles before it and nothing of the failed one', async () => {
    // PostgreSQL refuses the schema name after the role is created: the role must go with it.
    await expect(
      provisionRoles(
        db.url,
        [
          { schema: 'media', role: mediaRole, password: null },
          { schema: 'pg_analytics', role: analyticsRole, password: null },
        ],
        logger,
      ),
    ).rejects.toThrow(`provisioning pg_analytics (role ${analyticsRole}) failed: unacceptable schema name "pg_analytics"`);
    expect(await roleRow(mediaRole)).toMatchObject({ rolcanlogin: true });
    expect(await roleRow(analyticsRole)).toBeUndefined();
    const { rows } = await admin.query<{ nspname: string; owner: string }>(
      `select nspname, pg_get_userbyid(nspowner) as owner from pg_namespace where nspname in ('media', 'pg_analytics')`,
    );
    expect(rows).toEqual([{ nspname: 'media', owner: mediaRole }]);
  });
});
