// What the rest of the sidecar sees of tracing: the Tracing interface and createTracing. The SDK
// (sdk-trace-base, resources, core, the B3 and Jaeger propagators: ≈ 6 MB of RSS) is in
// tracing-sdk.ts and imported only when tracing is on, at start.
import type { Context, TextMapPropagator, Tracer } from '@opentelemetry/api'
import type { SpanExporter } from '@opentelemetry/sdk-trace-base'
import type { TracingSettings } from './settings.js'

export const REMORA_VERSION = '0.1.0'

export type SpanDropReason = 'queue_full' | 'export_failed' | 'export_timeout'

/** Where the exporter's outcomes go (metrics, logs). Must not throw. */
export interface TracingHooks {
  onExported?(n: number): void
  onDropped?(reason: SpanDropReason, n: number): void
  onExportError?(err: Error | undefined): void
}

export interface TracingResource {
  readonly workload: string
  readonly namespace: string
}

/** One sidecar's tracer: explicit spans only, no global registration (several sidecars may share a process). */
export interface Tracing {
  readonly tracer: Tracer
  readonly propagator: TextMapPropagator
  readonly settings: TracingSettings
  /**
   * Set when the propagators are W3C only (the default): the trace stage decides sampling itself
   * and an unsampled request never reaches the SDK (proxy/telemetry/w3c.ts). The SDK then samples
   * everything it is handed; `stageTraceId` makes the next root span use the trace id the decision
   * was made on. Null with B3 or Jaeger propagation: the SDK's sampler and propagators do it all.
   */
  readonly w3c: { readonly ratio: number; readonly parentBased: boolean; stageTraceId(traceId: string | null): void } | null
  forceFlush(): Promise<void>
  shutdown(): Promise<void>
}

export { SpanKind } from '@opentelemetry/api'
export type { Context }

/**
 * Builds one sidecar's tracer provider from resolved settings. `exporter` replaces the configured
 * one (tests use the SDK's InMemorySpanExporter); returns null when tracing is off, without loading
 * the SDK. The SDK and the exporter load here, at start: a broken install fails the start.
 */
export async function createTracing(
  s: TracingSettings,
  resource: TracingResource,
  hooks: TracingHooks = {},
  o: { exporter?: SpanExporter; scheduledDelayMs?: number } = {},
): Promise<Tracing | null> {
  if (s.exporter === 'none' && !o.exporter) return null
  const { buildTracing } = await import('./tracing-sdk.js')
  return buildTracing(s, resource, hooks, o)
}
