import type { EntityManager } from '@mikro-orm/postgresql';
import DataLoader from 'dataloader';
import type { NewEvent } from '../events/envelope.js';
import { recordEvents } from '../events/outbox.js';
import type { Caller } from '../internal-auth.js';
import type { Logger } from '../log.js';
import { unauthenticated } from '../errors.js';

/**
 * What every resolver receives: who is calling (as the gateway vouched), the request's
 * correlation id and logger, its own EntityManager fork (STYLE 6), and request-scoped
 * DataLoaders so a list of N parents costs one query per level, not N.
 */
export interface SubgraphContext {
  serviceName: string;
  readonly caller: Caller;
  correlationId: string;
  log: Logger;
  em: EntityManager;
  loader<K, V>(name: string, batch: (keys: readonly K[]) => Promise<(V | Error)[]>): DataLoader<K, V>;
  /** Runs `work` in one transaction whose emitted events go to the outbox; the relay is told after commit. */
  transaction<T>(work: (tx: UnitOfWork) => Promise<T>): Promise<T>;
}

export interface UnitOfWork {
  em: EntityManager;
  emit(event: NewEvent): void;
}

export interface ContextDeps {
  serviceName: string;
  em: EntityManager;
  log: Logger;
  caller: Caller;
  correlationId: string;
  /** Called after each commit that wrote events. */
  onEventsCommitted: () => void;
}

export function createSubgraphContext(deps: ContextDeps): SubgraphContext {
  const loaders = new Map<string, DataLoader<any, any>>();
  const origin = { serviceName: deps.serviceName, correlationId: deps.correlationId };
  return {
    serviceName: deps.serviceName,
    caller: deps.caller,
    correlationId: deps.correlationId,
    log: deps.log,
    em: deps.em,
    loader(name, batch) {
      let loader = loaders.get(name);
      if (!loader) loaders.set(name, (loader = new DataLoader(batch)));
      return loader;
    },
    async transaction(work) {
      let emitted = 0;
      const result = await deps.em.transactional(async (em) => {
        const pending: NewEvent[] = [];
        const out = await work({
          em,
          emit(event) {
            pending.push({ ...event, userId: event.userId ?? deps.caller.userId });
          },
        });
        await recordEvents(em, origin, pending);
        emitted = pending.length;
        return out;
      });
      if (emitted) deps.onEventsCommitted();
      return result;
    },
  };
}

/** The signed-in user's id, or UNAUTHENTICATED (saying why a presented token was refused). */
export function requireUser(ctx: SubgraphContext): string {
  if (!ctx.caller.userId) throw unauthenticated(ctx.caller.authError);
  return ctx.caller.userId;
}
