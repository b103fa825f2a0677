import type { MikroORM } from '@mikro-orm/postgresql';
import { isIsoTime } from '../formats.js';
import { BodyTooLargeError, readBody } from '../http/body.js';
import { sendError, sendJson } from '../http/graphql-http.js';
import type { Handler } from '../http/server.js';
import { InternalAuthError, signCaller, verifyCaller, type Caller } from '../internal-auth.js';
import type { Logger } from '../log.js';
import { countOpenDeadLetters, listDeadLetters, type DeadLetter, type EventConsumer, type ReplayOutcome } from '../events/consumer.js';

/**
 * Consumers' state and dead letters live with the subgraph that runs them: dead letters in its
 * schema, and only its process can run its handlers again. So every subgraph serves them on an
 * internal route, and the audit subgraph gathers them for admins (systemStatus, deadLetters,
 * replayDeadLetter). Requests are signed like the gateway's: an admin caller, bound to this
 * subgraph and to the request body.
 */
export const CONSUMER_ADMIN_PATH = '/internal/consumers';

export type ConsumerAdminRequest =
  | { action: 'status' }
  | { action: 'dead-letters'; consumer?: string; all?: boolean; limit?: number; before?: DeadLetterKey }
  | { action: 'replay'; id: string };

/** Where a page of dead letters starts: the (failedAt, id) of the last one seen. */
export interface DeadLetterKey {
  failedAt: string;
  id: string;
}

/** One consumer as its subgraph sees it. */
export interface ConsumerReport {
  name: string;
  /** Last commit of a batch by this process, if any since it started. */
  lastHandledAt: string | null;
  openDeadLetters: number;
}

/** What crosses the wire: dates as ISO strings. */
export type DeadLetterJson = Omit<DeadLetter, 'failedAt' | 'replayedAt'> & { failedAt: string; replayedAt: string | null };

export type ReplayOutcomeJson = { ok: true; deadLetter: DeadLetterJson } | Extract<ReplayOutcome, { ok: false }>;

const MAX_REQUEST_BYTES = 16 * 1024;

export function consumerAdminRoute(options: { subgraph: string; orm: MikroORM; consumers: EventConsumer[]; internalSecret: string; logger: Logger }): Handler {
  return async (req, res) => {
    if (req.method !== 'POST') return sendError(res, 405, 'METHOD_NOT_ALLOWED', 'POST only');
    let body: ConsumerAdminRequest;
    try {
      body = JSON.parse((await readBody(req, MAX_REQUEST_BYTES)).toString('utf8')) as ConsumerAdminRequest;
    } catch (error) {
      if (error instanceof BodyTooLargeError) return sendError(res, 413, 'PAYLOAD_TOO_LARGE', 'Request body too large');
      return sendError(res, 400, 'BAD_REQUEST', 'Body must be JSON');
    }
    let caller: Caller;
    try {
      ({ caller } = verifyCaller(options.internalSecret, { audience: options.subgraph, headers: req.headers, operation: { query: CONSUMER_ADMIN_PATH, variables: body } }));
    } catch (error) {
      if (!(error instanceof InternalAuthError)) throw error;
      return sendError(res, 401, 'UNAUTHENTICATED', error.message);
    }
    if (!caller.roles.includes('ADMIN')) return sendError(res, 403, 'FORBIDDEN', 'Consumer administration is for admins');
    const problem = invalid(body);
    if (problem) return sendError(res, 400, 'BAD_REQUEST', problem);

    // A subgraph without consumers has no inbox or dead-letter tables, and nothing to report.
    const none = options.consumers.length === 0;
    if (body?.action === 'status') {
      const open = none ? new Map<string, number>() : await countOpenDeadLetters(options.orm);
      const consumers: ConsumerReport[] = options.consumers.map((consumer) => ({
        name: consumer.name,
        lastHandledAt: consumer.lastHandledAt?.toISOString() ?? null,
        openDeadLetters: open.get(consumer.name) ?? 0,
      }));
      return sendJson(res, 200, { consumers });
    }
    if (body?.action === 'dead-letters') {
      const deadLetters = none ? [] : await listDeadLetters(options.orm, { consumer: body.consumer, all: body.all, limit: body.limit, before: body.before });
      return sendJson(res, 200, { deadLetters });
    }
    if (body?.action === 'replay' && typeof body.id === 'string') {
      const [deadLetter] = none ? [] : await listDeadLetters(options.orm, { id: body.id });
      const consumer = deadLetter && options.consumers.find((candidate) => candidate.name === deadLetter.consumer);
      const outcome: ReplayOutcome = consumer
        ? await consumer.replayDeadLetter(body.id)
        : { ok: false, code: 'NOT_FOUND', message: `No dead letter ${body.id} in ${options.subgraph}` };
      options.logger.info({ deadLetterId: body.id, actor: caller.userId, outcome: outcome.ok ? 'replayed' : outcome.code }, 'dead letter replay requested');
      return sendJson(res, 200, outcome);
    }
    return sendError(res, 400, 'BAD_REQUEST', 'action must be status, dead-letters, or replay (with id)');
  };
}

/** What is wrong with a request's fields, if anything (the signature says who sent it, not that it is well formed). */
function invalid(body: ConsumerAdminRequest): string | null {
  if (typeof body !== 'object' || body === null) return 'body must be an object';
  if (body.action === 'replay' && typeof body.id !== 'string') return 'id must be a string';
  if (body.action === 'dead-letters') {
    if (body.limit !== undefined && !(Number.isInteger(body.limit) && body.limit > 0 && body.limit <= 1000)) return 'limit must be 1..1000';
    if (body.consumer !== undefined && typeof body.consumer !== 'string') return 'consumer must be a string';
    const before = body.before;
    if (before !== undefined && (typeof before !== 'object' || before === null || typeof before.id !== 'string' || !isIsoTime(before.failedAt))) {
      return 'before must be { failedAt, id }';
    }
  }
  return null;
}

/** The caller side, used by the audit subgraph. */
export async function consumerAdmin<T>(target: { subgraph: string; url: string }, request: ConsumerAdminRequest, auth: { internalSecret: string; caller: Caller; correlationId: string }): Promise<T> {
  const headers = signCaller(auth.internalSecret, {
    audience: target.subgraph,
    caller: auth.caller,
    correlationId: auth.correlationId,
    operation: { query: CONSUMER_ADMIN_PATH, variables: request },
  });
  const response = await fetch(new URL(CONSUMER_ADMIN_PATH, target.url), {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify(request),
    signal: AbortSignal.timeout(10_000),
  });
  if (!response.ok) throw new Error(`${target.subgraph} answered ${response.status} to ${request.action}`);
  return (await response.json()) as T;
}
