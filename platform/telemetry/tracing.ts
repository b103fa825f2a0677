import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Link, type Span } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, SimpleSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';

/**
 * OpenTelemetry tracing for every process. One request is one trace: the gateway's span, the
 * query plan's fetches (@apollo/gateway makes those spans itself through the same API), each
 * subgraph's span, and, across the event stream, the span of every consumer that handles an
 * event the request caused. Between processes the context travels as W3C `traceparent`
 * headers: on HTTP to subgraphs, and in the event envelope's `trace` headers (which JetStream
 * also carries as message headers).
 *
 * Without setupTracing the API is a no-op: spans cost nothing and events carry no headers.
 */
export interface TracingOptions {
  serviceName: string;
  /** OTLP/HTTP base URL (OTEL_EXPORTER_OTLP_ENDPOINT); spans go to `<endpoint>/v1/traces`. */
  otlpEndpoint?: string;
  /** Tests pass an InMemorySpanExporter; spans are then exported one by one, at once. */
  exporter?: SpanExporter;
}

export interface Tracing {
  /** Exports what is buffered and stops; the global API is a no-op again. */
  shutdown(): Promise<void>;
}

const TRACER = 'storyloom';

export function setupTracing(options: TracingOptions): Tracing {
  const exporters: SpanExporter[] = [];
  if (options.exporter) exporters.push(options.exporter);
  if (options.otlpEndpoint) exporters.push(new OTLPTraceExporter({ url: `${options.otlpEndpoint.replace(/\/+$/, '')}/v1/traces` }));
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': options.serviceName }),
    spanProcessors: exporters.map((exporter) => (exporter === options.exporter ? new SimpleSpanProcessor(exporter) : new BatchSpanProcessor(exporter))),
  });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  return {
    async shutdown() {
      await provider.shutdown();
      trace.disable();
      propagation.disable();
      context.disable();
    },
  };
}

/** W3C trace headers of the active span (empty when tracing is off or no span is active). */
export function traceHeaders(from: Context = context.active()): Record<string, string> {
  const carrier: Record<string, string> = {};
  propagation.inject(from, carrier);
  return carrier;
}

/** The context a `traceparent` (and `tracestate`) header carries; the root context without one. */
export function contextFrom(headers: Record<string, string | string[] | undefined> | undefined): Context {
  if (!headers) return ROOT_CONTEXT;
  return propagation.extract(ROOT_CONTEXT, headers, {
    keys: (carrier) => Object.keys(carrier),
    get: (carrier, key) => {
      const value = carrier[key];
      return Array.isArray(value) ? value[0] : value;
    },
  });
}

export interface SpanOptions {
  kind: SpanKind;
  attributes?: Attributes;
  /** The parent: the caller's context (extracted from headers); else the active one. */
  parent?: Context;
  links?: Link[];
}

/**
 * Runs `work` in a new active span, which ends with it: errors are recorded and set the span's
 * status, then rethrown. Spans started inside (and events recorded inside) are its children.
 */
export function inSpan<T>(name: string, options: SpanOptions, work: (span: Span) => Promise<T>): Promise<T> {
  const tracer = trace.getTracer(TRACER);
  const parent = options.parent ?? context.active();
  return tracer.startActiveSpan(name, { kind: options.kind, attributes: options.attributes, links: options.links }, parent, async (span) => {
    try {
      return await work(span);
    } catch (error) {
      span.recordException(error instanceof Error ? error : String(error));
      span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
      throw error;
    } finally {
      span.end();
    }
  });
}

export { SpanKind };
