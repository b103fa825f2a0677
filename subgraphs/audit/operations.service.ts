import type { Config } from '../../platform/config.js';
import { badInput, userError } from '../../platform/errors.js';
import type { EventTransport } from '../../platform/events/transport.js';
import { timeIdCursor, toConnection } from '../../platform/graphql/connection.js';
import {
  consumerAdmin,
  type ConsumerReport,
  type DeadLetterJson,
  type ReplayOutcomeJson,
} from '../../platform/subgraph/consumer-admin.js';
import type { SubgraphContext } from '../../platform/subgraph/context.js';
import type { Topology } from '../../platform/subgraph/module.js';

const HEALTH_TIMEOUT_MS = 2_000;

/** One subgraph's part of a dead-letter page, or its name if it did not answer. */
type SubgraphDeadLetters = { views: DeadLetterView[]; open: number } | { unavailable: string };

/** A dead letter as the API shows it: its id names the subgraph that holds it. */
export type DeadLetterView = DeadLetterJson & { subgraph: string; rowId: string };

/**
 * The operator's view of the running system: which subgraphs answer, where each event consumer
 * stands, and the dead letters of every subgraph, gathered over their signed internal routes.
 */
export class OperationsService {
  constructor(
    private readonly deps: { config: Config; transport: EventTransport; topology: Topology },
  ) {}

  async systemStatus(ctx: SubgraphContext) {
    const subgraphs = this.deps.topology.subgraphs();
    const [health, reports, durables] = await Promise.all([
      Promise.all(subgraphs.map((subgraph) => healthy(subgraph.url))),
      Promise.all(subgraphs.map((subgraph) => this.ask<{ consumers: ConsumerReport[] }>(ctx, subgraph, { action: 'status' }).catch(() => null))),
      this.deps.transport.consumerStatus(),
    ]);
    const reported = new Map(reports.flatMap((report) => report?.consumers ?? []).map((report) => [report.name, report]));
    const consumers = durables.map((durable) => {
      const report = reported.get(durable.name);
      const handledAt = report?.lastHandledAt ? new Date(report.lastHandledAt) : null;
      return {
        name: durable.name,
        pending: durable.pending,
        inFlight: durable.inFlight,
        redelivered: durable.redelivered,
        lastEventAt: latest(durable.lastActiveAt, handledAt),
        deadLetters: report?.openDeadLetters ?? 0,
      };
    });
    return {
      mode: this.deps.topology.mode,
      eventTransport: this.deps.transport.kind,
      subgraphs: subgraphs.map((subgraph, i) => ({ name: subgraph.name, url: `${subgraph.url}/graphql`, healthy: health[i] })),
      consumers,
    };
  }

  /**
   * Open dead letters of every subgraph, newest first: each subgraph gives its first+1 after
   * the cursor, and the merge keeps the first+1 overall.
   */
  async deadLetters(ctx: SubgraphContext, args: { first: number; after?: string | null; consumer?: string | null }) {
    const key = timeIdCursor(args.after);
    const before = key ? { failedAt: key.at, id: key.id } : undefined;
    // Each subgraph on its own: one that does not answer leaves its dead letters out, not the page.
    const answers = await Promise.all(
      this.deps.topology.subgraphs().map(async (subgraph): Promise<SubgraphDeadLetters> => {
        try {
          const [{ deadLetters }, { consumers }] = await Promise.all([
            this.ask<{ deadLetters: DeadLetterJson[] }>(ctx, subgraph, { action: 'dead-letters', consumer: args.consumer ?? undefined, limit: args.first + 1, before }),
            this.ask<{ consumers: ConsumerReport[] }>(ctx, subgraph, { action: 'status' }),
          ]);
          const views = deadLetters.map((deadLetter): DeadLetterView => ({ ...deadLetter, subgraph: subgraph.name, rowId: deadLetter.id, id: `${subgraph.name}:${deadLetter.id}` }));
          const open = consumers.filter((consumer) => !args.consumer || consumer.name === args.consumer).reduce((sum, consumer) => sum + consumer.openDeadLetters, 0);
          return { views, open };
        } catch (error) {
          ctx.log.warn({ err: error, subgraph: subgraph.name }, 'subgraph did not answer for its dead letters');
          return { unavailable: subgraph.name };
        }
      }),
    );
    // The order of the SQL listing: failedAt, then id, both descending (uuids compare as their text).
    const merged = answers
      .flatMap((answer) => ('views' in answer ? answer.views : []))
      .sort((a, b) => (a.failedAt === b.failedAt ? b.rowId.localeCompare(a.rowId) : b.failedAt.localeCompare(a.failedAt)))
      .slice(0, args.first + 1);
    const totalCount = answers.reduce((sum, answer) => sum + ('open' in answer ? answer.open : 0), 0);
    return {
      ...toConnection(merged, args.first, totalCount, (deadLetter) => [deadLetter.failedAt, deadLetter.rowId]),
      unavailableSubgraphs: answers.flatMap((answer) => ('unavailable' in answer ? [answer.unavailable] : [])),
    };
  }

  /** Has the subgraph holding the dead letter run its event through the handler again. */
  async replayDeadLetter(ctx: SubgraphContext, id: string): Promise<{ deadLetter: DeadLetterView }> {
    const [name, rowId] = id.split(':');
    if (!name || !rowId) throw badInput('id is not a dead letter id', 'id');
    const subgraph = this.deps.topology.subgraphs().find((candidate) => candidate.name === name);
    if (!subgraph) throw userError('NOT_FOUND', `No subgraph ${name}`, 'id');
    const outcome = await this.ask<ReplayOutcomeJson>(ctx, subgraph, { action: 'replay', id: rowId });
    if (!outcome.ok) throw userError(outcome.code, outcome.message, 'id');
    return { deadLetter: { ...outcome.deadLetter, subgraph: name, rowId: outcome.deadLetter.id, id } };
  }

  private ask<T>(ctx: SubgraphContext, subgraph: { name: string; url: string }, request: Parameters<typeof consumerAdmin>[1]): Promise<T> {
    return consumerAdmin<T>({ subgraph: subgraph.name, url: subgraph.url }, request, {
      internalSecret: this.deps.config.INTERNAL_SECRET,
      caller: ctx.caller,
      correlationId: ctx.correlationId,
    });
  }
}

async function healthy(url: string): Promise<boolean> {
  try {
    const response = await fetch(`${url}/ready`, { signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS) });
    return response.ok;
  } catch {
    return false;
  }
}

function latest(a: Date | null, b: Date | null): Date | null {
  if (!a || !b) return a ?? b;
  return a > b ? a : b;
}
