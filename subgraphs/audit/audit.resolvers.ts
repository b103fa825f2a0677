import { badInput, forbidden, mutationPayload } from '../../platform/errors.js';
import { pageSize, timeIdCursor, toConnection, type PageArgs } from '../../platform/graphql/connection.js';
import { DateTime } from '../../platform/graphql/scalars.js';
import { requireUser, type SubgraphContext } from '../../platform/subgraph/context.js';
import type { Resolvers } from '../../platform/subgraph/server.js';
import { EventLogEntry } from './audit.entities.js';
import { typeMatch } from './audit.rules.js';
import { isUuid } from '../../platform/formats.js';
import { JSONScalar } from './json.scalar.js';
import type { DeadLetterView, OperationsService } from './operations.service.js';

interface EventsArgs extends PageArgs {
  type?: string | null;
  userId?: string | null;
}

/** Operator views are for admins alone; anyone else signed in is FORBIDDEN. */
function requireAdmin(ctx: SubgraphContext): void {
  requireUser(ctx);
  if (!ctx.caller.roles.includes('ADMIN')) throw forbidden('Operator views are for admins');
}

/**
 * The event log newest first, a keyset page at a time: `(timestamp, id) < cursor` is one range
 * scan of event_log_timestamp_idx (or event_log_user_idx with a user), however deep the page;
 * a type filter skips the other types along that scan. The count honours the filters, not the cursor.
 */
async function events(ctx: SubgraphContext, args: EventsArgs) {
  requireAdmin(ctx);
  const first = pageSize(args.first);
  const after = timeIdCursor(args.after);
  if (args.userId != null && !isUuid(args.userId)) throw badInput('userId is not a user id', 'userId');

  const filtered = ctx.em.createQueryBuilder(EventLogEntry, 'e');
  if (args.type != null) {
    const match = typeMatch(args.type);
    filtered.andWhere('exact' in match ? { type: match.exact } : { type: { $re: match.regex } });
  }
  if (args.userId != null) filtered.andWhere({ userId: args.userId });

  const page = filtered.clone();
  if (after) page.andWhere(`("e"."timestamp", "e"."id") < (?::timestamptz, ?::uuid)`, [after.at, after.id]);
  const [rows, totalCount] = await Promise.all([
    page.orderBy({ timestamp: 'desc', id: 'desc' }).limit(first + 1).getResultList(),
    filtered.getCount(),
  ]);
  return toConnection(rows, first, totalCount, (row) => [row.timestamp.toISOString(), row.id]);
}

export function auditResolvers(operations: OperationsService): Resolvers {
  return {
    DateTime,
    JSON: JSONScalar,
    Query: {
      events: (_: unknown, args: EventsArgs, ctx: SubgraphContext) => events(ctx, args),
      systemStatus: (_: unknown, _args: unknown, ctx: SubgraphContext) => {
        requireAdmin(ctx);
        return operations.systemStatus(ctx);
      },
      deadLetters: (_: unknown, args: PageArgs & { consumer?: string | null }, ctx: SubgraphContext) => {
        requireAdmin(ctx);
        return operations.deadLetters(ctx, { first: pageSize(args.first), after: args.after, consumer: args.consumer });
      },
    },
    Mutation: {
      replayDeadLetter: (_: unknown, args: { id: string }, ctx: SubgraphContext) => {
        requireAdmin(ctx);
        return mutationPayload(() => operations.replayDeadLetter(ctx, args.id));
      },
    },
    DeadLetter: {
      event: (deadLetter: DeadLetterView) => deadLetter.envelope,
    },
  };
}
