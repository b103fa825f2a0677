import { Migration } from '@mikro-orm/migrations';

/**
 * Base of every subgraph migration. Migrations are plain SQL with unqualified table names;
 * the subgraph's schema is put first on the search path for the migration's transaction, so
 * the same migration text serves whatever schema the subgraph is configured with.
 */
export abstract class SchemaMigration extends Migration {
  protected get schema(): string {
    const schema = this.config.get('schema');
    if (!schema) throw new Error('SchemaMigration needs the ORM `schema` option');
    return schema;
  }

  protected sql(...statements: string[]): void {
    this.addSql(`set local search_path to "${this.schema}"`);
    for (const statement of statements) this.addSql(statement);
  }
}
