import type { EntityManager } from '@mikro-orm/postgresql';
import type { Logger } from '../log.js';
import type { EventEnvelope, NewEvent } from './envelope.js';

/**
 * What a subgraph's event handler gets: the transaction it runs in, the event, and a way to emit
 * the events it causes. Handling, the inbox row that marks the event handled, and the emitted
 * events commit together or not at all.
 */
export interface EventHandlerContext {
  /** The EntityManager of the handling transaction; flushed after the handler returns. */
  em: EntityManager;
  event: EventEnvelope;
  /**
   * Records an event this one causes, in the same transaction (through the outbox). It carries
   * the cause's correlationId, has the cause's id as causationId, and concerns the cause's user
   * unless `userId` says otherwise. During a replay emitted events are dropped: what they
   * announced was announced the first time.
   */
  emit(event: NewEvent): void;
  log: Logger;
  /** True while `npm run replay` rebuilds the consumer's read model from the stream. */
  replaying: boolean;
}

/** What a handler of several events at once gets (see ConsumerDefinition.handleMany). */
export interface BatchHandlerContext {
  em: EntityManager;
  log: Logger;
  replaying: boolean;
}

/** One durable consumer of a subgraph: which events it takes and what it does with each. */
export interface ConsumerDefinition {
  /** The durable name, unique across the platform: `<subgraph>` or `<subgraph>-<purpose>`. */
  name: string;
  /** Event types, NATS-style wildcards allowed (`user.*`, `story.>`, `>`). */
  types: string[];
  /**
   * Applies one event. Throwing rolls the event's effect back and has it redelivered with
   * backoff; after the last attempt it becomes a dead letter. Handlers must only change the
   * database through `ctx.em` (an external call is not undone by a rollback).
   */
  handle(event: EventEnvelope, ctx: EventHandlerContext): Promise<void>;
  /**
   * Optional, for throughput: applies several new events at once, in stream order (one
   * multi-row statement instead of one per event, say). It must have the same effect as
   * `handle` on each in turn, and cannot emit events. If it throws, the platform applies the
   * events one at a time with `handle`, which finds the one that fails.
   */
  handleMany?(events: EventEnvelope[], ctx: BatchHandlerContext): Promise<void>;
  /**
   * Present on consumers that feed a read model `npm run replay -- <name>` can rebuild: deletes
   * everything `handle` builds, so that handling the stream from the start gives it back.
   */
  reset?(em: EntityManager): Promise<void>;
}
