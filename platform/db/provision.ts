import pg from 'pg';
import type { Logger } from '../log.js';
import { endWithin } from './session.js';

/** A subgraph's schema and the role that alone may touch it. */
export interface RoleSetting {
  schema: string;
  role: string;
  /** Null: the role logs in without a password (trust or certificate authentication). */
  password: string | null;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Each subgraph's role, read from SUBGRAPH_<NAME>_DATABASE_URL: the same URL the subgraph
 * itself is given as DATABASE_URL, so the password lives in one secret. Every missing or bad
 * setting is named in one error.
 */
export function roleSettingsFrom(env: NodeJS.ProcessEnv, schemas: string[]): RoleSetting[] {
  const problems: string[] = [];
  const roles: RoleSetting[] = [];
  for (const schema of schemas) {
    const key = `SUBGRAPH_${schema.toUpperCase()}_DATABASE_URL`;
    const value = env[key];
    if (!value) {
      problems.push(`${key}: required (postgres://<role>:<password>@host/db)`);
      continue;
    }
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      problems.push(`${key}: not a URL`);
      continue;
    }
    const role = decoded(url.username);
    const password = url.password ? decoded(url.password) : null;
    if (!/^postgres(ql)?:$/.test(url.protocol)) problems.push(`${key}: must be a postgres:// URL`);
    else if (role === undefined || password === undefined) problems.push(`${key}: the role or password is not valid percent-encoding (write % as %25)`);
    else if (!IDENTIFIER.test(role)) problems.push(`${key}: the role must be lower-case letters, digits and _ (got ${JSON.stringify(role)})`);
    else roles.push({ schema, role, password });
  }
  const taken = roles.map((r) => r.role).filter((role, i, all) => all.indexOf(role) !== i);
  if (taken.length) problems.push(`each subgraph needs a role of its own; shared: ${[...new Set(taken)].join(', ')}`);
  if (problems.length) throw new Error(`Cannot provision the database:\n  ${problems.join('\n  ')}`);
  return roles;
}

function decoded(part: string): string | undefined {
  try {
    return decodeURIComponent(part);
  } catch {
    return undefined;
  }
}

/**
 * What in a schema must change owner for its role to be its owner: tables, views, foreign tables
 * and standalone sequences (a table's sequences and indexes follow it), types and domains (not a
 * table's row type), functions and procedures. As `alter … owner to` statements' targets.
 */
const FOREIGN_OWNED = `
  select case c.relkind when 'v' then 'view' when 'm' then 'materialized view' when 'f' then 'foreign table' when 'S' then 'sequence' else 'table' end as kind,
         format('%I.%I', n.nspname, c.relname) as name
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
   where n.nspname = $1 and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S') and pg_get_userbyid(c.relowner) <> $2
     and not (c.relkind = 'S' and exists (select 1 from pg_depend d where d.objid = c.oid and d.classid = 'pg_class'::regclass and d.deptype in ('a', 'i')))
  union all
  select case t.typtype when 'd' then 'domain' else 'type' end, format('%I.%I', n.nspname, t.typname)
    from pg_type t join pg_namespace n on n.oid = t.typnamespace
   where n.nspname = $1 and t.typtype in ('e', 'd', 'r', 'm', 'c') and pg_get_userbyid(t.typowner) <> $2
     and (t.typtype <> 'c' or (select relkind from pg_class where oid = t.typrelid) = 'c')
     and t.typtype <> 'm' -- a multirange follows its range
  union all
  select 'routine', p.oid::regprocedure::text
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
   where n.nspname = $1 and pg_get_userbyid(p.proowner) <> $2`;

/**
 * Creates (or updates) each role, makes it the owner of its schema and of everything already in
 * it (tables made by an earlier all-in-one run, with their sequences and indexes; FOREIGN_OWNED), and
 * takes away the public's rights on the schema. Roles get no grant anywhere else, so a subgraph
 * reading another's table is refused by PostgreSQL. Each role in its own transaction.
 */
export async function provisionRoles(adminUrl: string, roles: RoleSetting[], logger: Logger): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    for (const { schema, role, password } of roles) {
      const credentials = password === null ? 'password null' : `password ${admin.escapeLiteral(password)}`;
      await admin.query('begin');
      try {
        const { rowCount } = await admin.query('select 1 from pg_roles where rolname = $1', [role]);
        await admin.query(`${rowCount ? 'alter' : 'create'} role "${role}" login nosuperuser nocreatedb nocreaterole ${credentials}`);
        await admin.query(`create schema if not exists "${schema}" authorization "${role}"`);
        await admin.query(`alter schema "${schema}" owner to "${role}"`);
        await admin.query(`revoke all on schema "${schema}" from public`);
        const { rows } = await admin.query<{ name: string; kind: string }>(FOREIGN_OWNED, [schema, role]);
        for (const { name, kind } of rows) await admin.query(`alter ${kind} ${name} owner to "${role}"`);
        await admin.query('commit');
        logger.info({ schema, role, created: !rowCount, reowned: rows.length }, 'subgraph role provisioned');
      } catch (error) {
        await admin.query('rollback').catch(() => undefined);
        throw new Error(`provisioning ${schema} (role ${role}) failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
      }
    }
  } finally {
    await endWithin(admin, 2_000);
  }
}
