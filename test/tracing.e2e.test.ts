import { randomUUID } from 'node:crypto';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { SpanKind } from '@opentelemetry/api';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { setupTracing, type Tracing } from '../platform/telemetry/tracing.js';
import { captureEvents } from './support/capture.js';
import { clientOperation } from './support/clients.js';
import { registerMember } from './support/people.js';
import { startTestStack, type TestStack } from './support/stack.js';

/**
 * Traces in the all-in-one process, seen through an in-memory exporter: one request's spans
 * from the gateway through the subgraphs it calls and, across the event stream (JetStream),
 * into the consumers that handle the events it caused.
 */
let stack: TestStack;
let exporter: InMemorySpanExporter;
let tracing: Tracing;

beforeAll(async () => {
  exporter = new InMemorySpanExporter();
  tracing = setupTracing({ serviceName: 'storyloom-test', exporter });
  stack = await startTestStack();
});
afterAll(async () => {
  await stack?.close();
  await tracing?.shutdown();
});

const idOf = (span: ReadableSpan) => span.spanContext().spanId;
const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;

/** The spans of one trace, and a way to tell whether one descends from another. */
function traceOf(traceId: string) {
  const spans = exporter.getFinishedSpans().filter((span) => span.spanContext().traceId === traceId);
  const byId = new Map(spans.map((span) => [idOf(span), span]));
  const descends = (span: ReadableSpan, ancestor: ReadableSpan) => {
    for (let parent = byId.get(parentOf(span) ?? ''); parent; parent = byId.get(parentOf(parent) ?? '')) if (parent === ancestor) return true;
    return false;
  };
  const named = (name: string) => spans.filter((span) => span.name === name);
  return { spans, descends, named };
}

describe('tracing', () => {
  it('holds the gateway span, the subgraph span and the consumer spans of the events a request causes in one trace', async () => {
    const ada = await registerMember(stack, 'Ada');
    const clientTraceId = randomUUID().replaceAll('-', '');
    const events = await captureEvents(stack.transport, ['subscription.upgraded']);
    const res = await stack.gql(clientOperation('ChangePlan'), { tier: 'GOLD' }, { token: ada.token, headers: { traceparent: `00-${clientTraceId}-${'2'.repeat(16)}-01` } });
    expect(res.data.changePlan.userErrors).toEqual([]);
    // The client's span is linked, not the parent: the gateway starts the trace.
    // The span ends just after the response is written: wait for it.
    const gateway = await vi.waitFor(
      () => {
        const [found] = exporter.getFinishedSpans().filter((span) => span.links.some((link) => link.context.traceId === clientTraceId));
        expect(found?.name).toBe('gateway POST /graphql');
        return found;
      },
      { timeout: 5_000, interval: 20 },
    );
    const traceId = gateway!.spanContext().traceId;
    expect(traceId).not.toBe(clientTraceId);

    // The event carries the trace in its envelope's headers, and JetStream as message headers.
    const upgraded = await events.waitFor((event) => event.userId === ada.id);
    await events.stop();
    expect(upgraded.trace?.traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    const nc = await connect({ servers: stack.config.NATS_URL! });
    try {
      const stored = await (await jetstreamManager(nc)).streams.getMessage(stack.config.EVENTS_STREAM, { last_by_subj: `${stack.subjectPrefix}subscription.upgraded` });
      expect(stored?.header.get('traceparent')).toBe(upgraded.trace!.traceparent);
    } finally {
      await nc.close();
    }

    // Story, collaboration, video and notification each handle subscription.upgraded (audit's
    // event log too, alone or in a batch with others).
    const consumers = ['story-projections', 'collaboration-projections', 'video-projections', 'notification'];
    await vi.waitFor(
      () => expect(traceOf(traceId).named('consume subscription.upgraded').map((span) => span.attributes['messaging.consumer.group.name'])).toEqual(expect.arrayContaining(consumers)),
      { timeout: 15_000, interval: 50 },
    );
    const trace = traceOf(traceId);
    const [billing] = trace.named('billing POST /graphql');
    expect(gateway!.kind).toBe(SpanKind.SERVER);
    expect(parentOf(gateway!)).toBeUndefined();
    expect(billing!.kind).toBe(SpanKind.SERVER);
    expect(billing!.attributes['graphql.operation.name']).toMatch(/ChangePlan/);
    expect(trace.descends(billing!, gateway!)).toBe(true);
    // Between them, @apollo/gateway's own spans: the fetch to billing is the billing span's parent.
    expect(trace.spans.find((span) => idOf(span) === parentOf(billing!))?.name).toBe('gateway.fetch');
    for (const consumer of trace.named('consume subscription.upgraded')) {
      expect(consumer.kind).toBe(SpanKind.CONSUMER);
      expect(consumer.attributes).toMatchObject({ 'messaging.destination.name': 'events.subscription.upgraded', 'messaging.message.id': upgraded.id });
      expect(trace.descends(consumer, billing!)).toBe(true);
    }
  });

  it('starts a trace of its own for a request that brings none', async () => {
    exporter.reset();
    const res = await stack.gql('{ me { id } }');
    expect(res.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    const gateway = await vi.waitFor(
      () => {
        const [found] = exporter.getFinishedSpans().filter((span) => span.name === 'gateway POST /graphql');
        expect(found).toBeDefined();
        return found;
      },
      { timeout: 5_000, interval: 20 },
    );
    expect(gateway!.parentSpanContext).toBeUndefined();
    expect(gateway!.links).toEqual([]);
    const identity = exporter.getFinishedSpans().find((span) => span.name === 'identity POST /graphql' && span.spanContext().traceId === gateway!.spanContext().traceId);
    expect(identity).toBeDefined();
  });
});
