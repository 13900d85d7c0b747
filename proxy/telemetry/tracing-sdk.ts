// The OpenTelemetry SDK side of tracing (tracer provider, samplers, propagators, the bounded batch
// processor, exporters), imported by createTracing only when tracing is on: a sidecar with tracing
// off never loads it.
import { TraceFlags, type Context, type TextMapPropagator } from '@opentelemetry/api'
import { CompositePropagator, ExportResultCode, W3CBaggagePropagator, W3CTraceContextPropagator, type ExportResult } from '@opentelemetry/core'
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3'
import { JaegerPropagator } from '@opentelemetry/propagator-jaeger'
import { resourceFromAttributes } from '@opentelemetry/resources'
import {
  AlwaysOnSampler,
  BasicTracerProvider,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type IdGenerator,
  type ReadableSpan,
  type Sampler,
  type Span,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base'
import type { PropagatorName, TracingSettings } from './settings.js'
import { REMORA_VERSION, type SpanDropReason, type Tracing, type TracingHooks, type TracingResource } from './tracing.js'
import { newSpanId, newTraceId } from './w3c.js'



function propagatorFor(name: PropagatorName): TextMapPropagator {
  switch (name) {
    case 'tracecontext':
      return new W3CTraceContextPropagator()
    case 'baggage':
      return new W3CBaggagePropagator()
    case 'b3':
      return new B3Propagator({ injectEncoding: B3InjectEncoding.SINGLE_HEADER })
    case 'b3multi':
      return new B3Propagator({ injectEncoding: B3InjectEncoding.MULTI_HEADER })
    case 'jaeger':
      return new JaegerPropagator()
  }
}

/** Extraction tries each in turn (the last one that finds a context wins); injection writes all. */
export function createPropagator(names: readonly PropagatorName[]): TextMapPropagator {
  const ps = names.map(propagatorFor)
  return ps.length === 1 ? ps[0]! : new CompositePropagator({ propagators: ps })
}

export function createSampler(ratio: number, parentBased: boolean): Sampler {
  const root = ratio >= 1 ? new AlwaysOnSampler() : new TraceIdRatioBasedSampler(ratio)
  return parentBased ? new ParentBasedSampler({ root }) : root
}

export interface BatchOptions {
  readonly maxQueueSize: number
  readonly maxExportBatchSize?: number
  readonly scheduledDelayMs?: number
  readonly exportTimeoutMs?: number
}

/**
 * A batch span processor whose only contact with the request path is an array push: a full queue
 * drops the span (counted), one export runs at a time, and a slow or dead collector costs nothing
 * but dropped spans. (The SDK's BatchSpanProcessor drops too, but does not say how many.)
 */
export class BoundedBatchSpanProcessor implements SpanProcessor {
  readonly #exporter: SpanExporter
  readonly #hooks: TracingHooks
  readonly #max: number
  readonly #batch: number
  readonly #delay: number
  readonly #timeout: number
  #queue: ReadableSpan[] = []
  #timer: NodeJS.Timeout | null = null
  #inFlight: Promise<void> | null = null
  #shutdown = false

  constructor(exporter: SpanExporter, o: BatchOptions, hooks: TracingHooks = {}) {
    this.#exporter = exporter
    this.#hooks = hooks
    this.#max = o.maxQueueSize
    this.#batch = Math.min(o.maxExportBatchSize ?? 512, o.maxQueueSize)
    this.#delay = o.scheduledDelayMs ?? 1000
    this.#timeout = o.exportTimeoutMs ?? 10_000
  }

  onStart(_span: Span, _ctx: Context): void {}

  onEnd(span: ReadableSpan): void {
    if (this.#shutdown || (span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return
    if (this.#queue.length >= this.#max) {
      this.#hooks.onDropped?.('queue_full', 1)
      return
    }
    this.#queue.push(span)
    if (this.#queue.length >= this.#batch) void this.#kick()
    else if (this.#timer === null) {
      this.#timer = setTimeout(() => {
        this.#timer = null
        void this.#kick()
      }, this.#delay)
      this.#timer.unref()
    }
  }

  #kick(): Promise<void> {
    if (this.#inFlight) return this.#inFlight
    if (this.#queue.length === 0) return Promise.resolve()
    const batch = this.#queue.splice(0, this.#batch)
    this.#inFlight = this.#export(batch).then(() => {
      this.#inFlight = null
      if (this.#queue.length >= this.#batch) void this.#kick()
      else if (this.#queue.length > 0 && this.#timer === null) {
        this.#timer = setTimeout(() => {
          this.#timer = null
          void this.#kick()
        }, this.#delay)
        this.#timer.unref()
      }
    })
    return this.#inFlight
  }

  #export(batch: ReadableSpan[]): Promise<void> {
    return new Promise<void>((resolve) => {
      let done = false
      const finish = (ok: boolean, reason: SpanDropReason, err?: Error): void => {
        if (done) return
        done = true
        clearTimeout(timer)
        if (ok) this.#hooks.onExported?.(batch.length)
        else {
          this.#hooks.onDropped?.(reason, batch.length)
          this.#hooks.onExportError?.(err)
        }
        resolve()
      }
      const timer = setTimeout(() => finish(false, 'export_timeout', new Error(`span export timed out after ${this.#timeout} ms`)), this.#timeout)
      timer.unref()
      try {
        this.#exporter.export(batch, (r: ExportResult) => finish(r.code === ExportResultCode.SUCCESS, 'export_failed', r.error))
      } catch (err) {
        finish(false, 'export_failed', err as Error)
      }
    })
  }

  async forceFlush(): Promise<void> {
    if (this.#timer) {
      clearTimeout(this.#timer)
      this.#timer = null
    }
    while (this.#queue.length > 0 || this.#inFlight) await this.#kick()
  }

  async shutdown(): Promise<void> {
    if (this.#shutdown) return
    await this.forceFlush()
    this.#shutdown = true
    await this.#exporter.shutdown().catch(() => {})
  }
}

async function createExporter(s: TracingSettings): Promise<SpanExporter> {
  switch (s.exporter) {
    case 'otlp': {
      const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-proto')
      return new OTLPTraceExporter({ url: s.endpoint!, timeoutMillis: 5000 }) as unknown as SpanExporter
    }
    case 'otlp-grpc': {
      const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-grpc')
      return new OTLPTraceExporter({ url: s.endpoint!, timeoutMillis: 5000 }) as unknown as SpanExporter
    }
    case 'jaeger': {
      const { JaegerExporter } = await import('@opentelemetry/exporter-jaeger')
      // An endpoint is the collector's HTTP Thrift API (…:14268/api/traces); without one, the UDP agent on :6832.
      return new JaegerExporter(s.endpoint ? { endpoint: s.endpoint } : {}) as unknown as SpanExporter
    }
    case 'none':
      throw new Error('tracing is off')
  }
}

/** The tracer provider behind createTracing (tracing.ts), once it has decided that tracing is on. */
export async function buildTracing(
  s: TracingSettings,
  resource: TracingResource,
  hooks: TracingHooks = {},
  o: { exporter?: SpanExporter; scheduledDelayMs?: number } = {},
): Promise<Tracing> {
  const exporter = o.exporter ?? (await createExporter(s))
  // Batches of 128, not the SDK's 512: serializing a batch blocks the event loop (≈ 1 ms per 100
  // spans), so smaller batches keep that off the requests' tail latency.
  const processor = new BoundedBatchSpanProcessor(exporter, { maxQueueSize: s.maxQueueSize, maxExportBatchSize: 128, scheduledDelayMs: o.scheduledDelayMs }, hooks)
  const w3cOnly = s.propagators.includes('tracecontext') && s.propagators.every((p) => p === 'tracecontext' || p === 'baggage')
  let staged: string | null = null
  const idGenerator: IdGenerator = {
    generateTraceId() {
      const id = staged ?? newTraceId()
      staged = null
      return id
    },
    generateSpanId: newSpanId,
  }
  const provider = new BasicTracerProvider({
    idGenerator,
    resource: resourceFromAttributes({
      'service.name': resource.workload,
      'service.namespace': resource.namespace,
      'k8s.namespace.name': resource.namespace,
      'service.version': REMORA_VERSION,
      'remora.sidecar.version': REMORA_VERSION,
    }),
    sampler: w3cOnly ? new AlwaysOnSampler() : createSampler(s.ratio, s.parentBased),
    spanProcessors: [processor],
  })
  return {
    tracer: provider.getTracer('remora-sidecar', REMORA_VERSION),
    propagator: createPropagator(s.propagators),
    settings: s,
    w3c: w3cOnly ? { ratio: s.ratio, parentBased: s.parentBased, stageTraceId: (id) => void (staged = id) } : null,
    forceFlush: () => processor.forceFlush(),
    shutdown: () => provider.shutdown(),
  }
}
