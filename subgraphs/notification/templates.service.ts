import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { forbidden, userError } from '../../platform/errors.js';
import { requireUser, type SubgraphContext } from '../../platform/subgraph/context.js';
import { TemplateRow } from './notification.entities.js';
import * as events from './notification.events.js';
import type { Channel } from './preferences.rules.js';
import { canonicalLocale } from './templates/locale.js';
import { resolveBody, type SourceOptions } from './templates/sources.js';
import { TemplateError, type TemplateDefinition, type TemplateSource, type TemplateStore } from './templates/template.js';
import { validateTemplate } from './templates/validate.js';

export interface TemplateInput {
  key: string;
  channel: Channel;
  locale: string;
  subject?: string | null;
  body?: string | null;
  html?: string | null;
  source?: TemplateSource | null;
  sourceRef?: string | null;
}

const definitionOf = (row: TemplateRow): TemplateDefinition => ({
  key: row.key,
  channel: row.channel,
  locale: row.locale,
  version: row.version,
  ...(row.subject !== null ? { subject: row.subject } : {}),
  body: row.body,
  ...(row.html !== null ? { html: row.html } : {}),
  source: row.source,
  ...(row.sourceRef !== null ? { sourceRef: row.sourceRef } : {}),
});

/** The stored templates behind the TemplateStore port: the newest version of each key, channel and locale. */
export function databaseTemplateStore(em: EntityManager): TemplateStore {
  return {
    async find(key, channel, locale) {
      const row = await em.findOne(TemplateRow, { key, channel, locale }, { orderBy: { version: 'desc' } });
      return row ? definitionOf(row) : null;
    },
  };
}

export const requireAdmin = (ctx: SubgraphContext) => {
  requireUser(ctx);
  if (!ctx.caller.roles.includes('ADMIN')) throw forbidden('Only admins manage templates and campaigns');
};

export class TemplatesService {
  constructor(private readonly sources: SourceOptions) {}

  /**
   * Stores a new version after checking it as rendering would: ICU syntax, escaping positions,
   * and for FILE and URL sources that the source can be read and its body compiles. A template
   * that would fail when someone should hear from us is refused here, with the field to fix.
   */
  async upsert(ctx: SubgraphContext, input: TemplateInput): Promise<{ template: TemplateRow }> {
    requireAdmin(ctx);
    const source = input.source ?? 'INLINE';
    const locale = canonicalLocale(input.locale) ?? input.locale;
    const draft: TemplateDefinition = {
      key: input.key,
      channel: input.channel,
      locale,
      version: 1,
      ...(input.subject != null ? { subject: input.subject } : {}),
      body: source === 'INLINE' ? (input.body ?? '') : '',
      ...(input.html != null ? { html: input.html } : {}),
      source,
      ...(input.sourceRef != null ? { sourceRef: input.sourceRef } : {}),
    };
    const problems = validateTemplate(draft);
    if (problems.length) throw userError('INVALID_TEMPLATE', problems.map((p) => p.message).join('; '), problems[0]!.field);
    if (source !== 'INLINE') {
      // Read now, so a wrong path or an unreachable address is the admin's error, not a person's lost message.
      let body: string;
      try {
        body = await resolveBody(draft, { ...this.sources, cacheTtlMs: 0 });
      } catch (error) {
        if (error instanceof TemplateError) throw userError(error.code, error.message, 'sourceRef');
        throw error;
      }
      const bodyProblems = validateTemplate({ ...draft, source: 'INLINE', body }).filter((p) => p.field === 'body');
      if (bodyProblems.length) throw userError('INVALID_TEMPLATE', `The body at ${draft.sourceRef}: ${bodyProblems.map((p) => p.message).join('; ')}`, 'sourceRef');
    }
    const template = await ctx.transaction(async ({ em, emit }) => {
      // The advisory lock numbers versions one at a time per key, channel and locale.
      await em.getConnection().execute('select pg_advisory_xact_lock(hashtext(?))', [`template:${draft.key}:${draft.channel}:${locale}`], 'run', em.getTransactionContext());
      const newest = await em.findOne(TemplateRow, { key: draft.key, channel: draft.channel, locale }, { orderBy: { version: 'desc' } });
      const row = em.create(TemplateRow, {
        id: randomUUID(),
        key: draft.key,
        channel: draft.channel,
        locale,
        version: (newest?.version ?? 0) + 1,
        subject: draft.subject ?? null,
        body: draft.body,
        html: draft.html ?? null,
        source,
        sourceRef: draft.sourceRef ?? null,
        createdBy: ctx.caller.userId,
        createdAt: new Date(),
      });
      emit({ type: events.TEMPLATE_UPDATED, payload: { key: row.key, channel: row.channel, locale, version: row.version, source } satisfies events.TemplateUpdated });
      return row;
    });
    return { template };
  }

  /** The newest version of each stored key, channel and locale (or of one key). */
  async current(ctx: SubgraphContext, key: string | null | undefined): Promise<TemplateRow[]> {
    requireAdmin(ctx);
    const rows = await ctx.em.find(TemplateRow, key ? { key } : {}, { orderBy: { key: 'asc', channel: 'asc', locale: 'asc', version: 'desc' } });
    const seen = new Set<string>();
    return rows.filter((r) => {
      const slot = `${r.key}\u0000${r.channel}\u0000${r.locale}`;
      if (seen.has(slot)) return false;
      seen.add(slot);
      return true;
    });
  }
}
