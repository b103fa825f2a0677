import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import { tableOf } from '../../platform/db/tables.js';
import { recordEvents } from '../../platform/events/outbox.js';
import { PollLoop } from '../../platform/jobs/poll-loop.js';
import type { Logger } from '../../platform/log.js';
import { retryOf, type ErasureRetry } from './deletion.rules.js';
import { UserDeletion, UserDeletionStep } from './identity.entities.js';
import * as events from './identity.events.js';

export interface DeletionRetriesOptions {
  orm: MikroORM;
  logger: Logger;
  /** How long a step may stay silent before it is asked again; also how often this looks. */
  retryMs: number;
  /** Called after a commit that wrote events, so the relay publishes them at once. */
  onEventsCommitted: () => void;
  clock?: () => Date;
}

/**
 * Asks again the steps of deletions that have not reported within IDENTITY_DELETION_RETRY_MS:
 * one user.erasure.requested per saga, naming the silent steps, with a new event id each time
 * (an inbox would take a re-publication of the first for handled). A step whose subgraph is
 * down gets the request when it is back; the eraser is idempotent, so a request crossing a late
 * report does no harm. A step is asked between one and two intervals after its last request.
 *
 * Replicas share the work through the saga's row: each takes one with `for update skip locked`
 * and bumps its steps' request time in the same transaction, so a saga is asked once per
 * interval however many replicas look.
 */
export class DeletionRetries {
  private readonly log: Logger;
  private readonly loop: PollLoop;
  private readonly clock: () => Date;
  private stopping = false;

  constructor(private readonly options: DeletionRetriesOptions) {
    this.log = options.logger.child({ worker: 'identity-deletion-retries' });
    this.clock = options.clock ?? (() => new Date());
    this.loop = new PollLoop(() => this.retryDue().then(() => undefined), {
      everyMs: options.retryMs,
      onError: (error) => this.log.warn({ err: error }, 'could not ask deletion steps again; trying at the next poll'),
    });
  }

  start(): void {
    this.loop.start();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.loop.stop();
  }

  /** Asks again every saga that has a step due; returns how many sagas were asked. */
  async retryDue(): Promise<number> {
    let asked = 0;
    // Each saga asked moves its steps' request time past the cutoff, so this ends when none is due.
    while (!this.stopping && (await this.retryOne())) {
      asked++;
      this.options.onEventsCommitted();
    }
    return asked;
  }

  /** One saga with a step due, asked again in one transaction; false when there is none. */
  private async retryOne(): Promise<boolean> {
    const now = this.clock();
    return this.options.orm.em.fork().transactional(async (em) => {
      const userId = await this.claimDue(em, new Date(now.getTime() - this.options.retryMs));
      if (!userId) return false;
      const deletion = await em.findOneOrFail(UserDeletion, { userId });
      const steps = await em.find(UserDeletionStep, { userId });
      const retry = retryOf(steps, now, this.options.retryMs);
      // Read after the lock: another replica that asked this saga and committed between the
      // query's snapshot and the lock left nothing due. The run ends; the next poll goes on.
      if (!retry) return false;
      for (const step of steps.filter((s) => retry.services.includes(s.service))) Object.assign(step, { attempts: step.attempts + 1, requestedAt: now });
      await recordEvents(em, { serviceName: 'identity', correlationId: deletion.correlationId }, [request(deletion, retry)]);
      this.log.info({ userId, services: retry.services, attempt: retry.attempt }, 'deletion steps silent: asked again');
      return true;
    });
  }

  /** The oldest saga in progress with a step last asked before `cutoff`, locked; a saga another replica (or a report) holds is passed over. */
  private async claimDue(em: EntityManager, cutoff: Date): Promise<string | null> {
    const [row] = await em.getConnection().execute<{ user_id: string }[]>(
      `select d."user_id" from ${tableOf(em, 'user_deletion')} d
        where d."status" = 'IN_PROGRESS'
          and exists (select 1 from ${tableOf(em, 'user_deletion_step')} s
                       where s."user_id" = d."user_id" and s."status" = 'PENDING' and s."requested_at" <= ?)
        order by d."requested_at"
        limit 1
          for update of d skip locked`,
      [cutoff],
      'all',
      em.getTransactionContext(),
    );
    return row?.user_id ?? null;
  }
}

function request(deletion: UserDeletion, retry: ErasureRetry) {
  const payload: events.UserErasureRequested = { userId: deletion.userId, services: retry.services, attempt: retry.attempt, requestedAt: deletion.requestedAt.toISOString() };
  return { type: events.USER_ERASURE_REQUESTED, userId: deletion.userId, payload };
}
