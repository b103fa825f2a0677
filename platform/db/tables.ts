import type { EntityManager } from '@mikro-orm/postgresql';

/**
 * A table of the subgraph's own schema, quoted for raw SQL: the ORM's entities carry the schema
 * by configuration, statements written by hand must name it.
 */
export function tableOf(em: Pick<EntityManager, 'config'>, table: string): string {
  return `"${em.config.get('schema')}"."${table}"`;
}
