import type { SidecarConfig } from '../config/schema.js'
import { TRACE_PROPAGATORS } from '../config/schema.js'

export type TraceExporterKind = 'otlp' | 'otlp-grpc' | 'jaeger' | 'none'
export type PropagatorName = (typeof TRACE_PROPAGATORS)[number]

/** Tracing as it will run: sidecar.yaml and flags first, then OTEL_* variables, then defaults. */
export interface TracingSettings {
  readonly exporter: TraceExporterKind
  /** Where spans go; null for the exporter's own default (jaeger: the UDP agent on :6832). */
  readonly endpoint: string | null
  readonly ratio: number
  /** Honour the caller's sampled flag (OTel's parentbased_*; always true unless OTEL_TRACES_SAMPLER says otherwise). */
  readonly parentBased: boolean
  readonly propagators: readonly PropagatorName[]
  readonly jaegerUi: string | null
  readonly maxQueueSize: number
  /** Values from the environment that were ignored, with why (logged once at start). */
  readonly warnings: readonly string[]
}

/** The OTEL_* variables remora reads; main.ts picks them from process.env (nothing else reads env). */
export type OtelEnv = Readonly<Partial<Record<(typeof OTEL_ENV_NAMES)[number], string>>>
export const OTEL_ENV_NAMES = [
  'OTEL_TRACES_EXPORTER',
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
  'OTEL_EXPORTER_OTLP_PROTOCOL',
  'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL',
  'OTEL_TRACES_SAMPLER',
  'OTEL_TRACES_SAMPLER_ARG',
  'OTEL_PROPAGATORS',
] as const

export function pickOtelEnv(env: Readonly<Record<string, string | undefined>>): OtelEnv {
  const out: Record<string, string> = {}
  for (const k of OTEL_ENV_NAMES) {
    const v = env[k]
    if (v !== undefined && v.trim() !== '') out[k] = v.trim()
  }
  return out
}

const DEFAULT_OTLP_HTTP = 'http://localhost:4318/v1/traces'
const DEFAULT_OTLP_GRPC = 'http://localhost:4317'

/** OTLP/HTTP: a bare base URL (`http://jaeger:4318`) gets the signal path, as OTEL_EXPORTER_OTLP_ENDPOINT does. */
export function otlpHttpTracesUrl(base: string): string {
  const u = new URL(base)
  if (u.pathname === '/' || u.pathname === '') return `${u.origin}/v1/traces`
  return base
}

function samplerFromEnv(env: OtelEnv, warnings: string[]): { ratio: number; parentBased: boolean } | null {
  const name = env.OTEL_TRACES_SAMPLER
  if (!name) return null
  const argRaw = env.OTEL_TRACES_SAMPLER_ARG
  const arg = argRaw === undefined ? 1 : Number(argRaw)
  const ratioArg = Number.isFinite(arg) && arg >= 0 && arg <= 1 ? arg : (warnings.push(`OTEL_TRACES_SAMPLER_ARG="${argRaw}" is not a ratio 0..1; using 1`), 1)
  switch (name) {
    case 'always_on':
      return { ratio: 1, parentBased: false }
    case 'always_off':
      return { ratio: 0, parentBased: false }
    case 'traceidratio':
      return { ratio: ratioArg, parentBased: false }
    case 'parentbased_always_on':
      return { ratio: 1, parentBased: true }
    case 'parentbased_always_off':
      return { ratio: 0, parentBased: true }
    case 'parentbased_traceidratio':
      return { ratio: ratioArg, parentBased: true }
    default:
      warnings.push(`OTEL_TRACES_SAMPLER="${name}" is not supported; ignored`)
      return null
  }
}

function propagatorsFromEnv(env: OtelEnv, warnings: string[]): PropagatorName[] | null {
  const raw = env.OTEL_PROPAGATORS
  if (!raw) return null
  const out: PropagatorName[] = []
  for (const p of raw.split(',').map((s) => s.trim().toLowerCase())) {
    if (p === '' || p === 'none') continue
    if ((TRACE_PROPAGATORS as readonly string[]).includes(p)) out.push(p as PropagatorName)
    else warnings.push(`OTEL_PROPAGATORS: "${p}" is not supported; ignored`)
  }
  return out.length ? out : null
}

function exporterFromEnv(env: OtelEnv, warnings: string[]): TraceExporterKind | null {
  const raw = env.OTEL_TRACES_EXPORTER?.split(',')[0]?.trim().toLowerCase()
  if (!raw) return null
  if (raw === 'none') return 'none'
  if (raw === 'jaeger') return 'jaeger'
  if (raw === 'otlp') {
    const proto = (env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf').toLowerCase()
    if (proto === 'grpc') return 'otlp-grpc'
    if (proto !== 'http/protobuf') warnings.push(`OTLP protocol "${proto}" is not supported; using http/protobuf`)
    return 'otlp'
  }
  warnings.push(`OTEL_TRACES_EXPORTER="${raw}" is not supported; ignored`)
  return null
}

function envEndpoint(env: OtelEnv, exporter: TraceExporterKind): string | null {
  if (exporter === 'otlp') {
    if (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
    if (env.OTEL_EXPORTER_OTLP_ENDPOINT) return `${env.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, '')}/v1/traces`
  }
  if (exporter === 'otlp-grpc') return env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT ?? null
  return null
}

/**
 * Resolves tracing once at start. Tracing is off until something names an exporter or an endpoint
 * (sidecar.yaml, a flag, or OTEL_TRACES_EXPORTER / OTEL_EXPORTER_OTLP_*): a sidecar never sends
 * spans to a default address nobody asked for.
 */
export function resolveTracingSettings(t: SidecarConfig['telemetry']['tracing'], env: OtelEnv = {}): TracingSettings {
  const warnings: string[] = []
  const envExporter = exporterFromEnv(env, warnings)
  const anyEnvEndpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT
  let exporter: TraceExporterKind = t.exporter ?? envExporter ?? (t.endpoint || anyEnvEndpoint ? 'otlp' : 'none')
  let endpoint: string | null = null
  if (exporter === 'otlp') endpoint = t.endpoint ? otlpHttpTracesUrl(t.endpoint) : (envEndpoint(env, exporter) ?? DEFAULT_OTLP_HTTP)
  else if (exporter === 'otlp-grpc') endpoint = t.endpoint ?? envEndpoint(env, exporter) ?? DEFAULT_OTLP_GRPC
  else if (exporter === 'jaeger') endpoint = t.endpoint ?? null
  const envSampler = samplerFromEnv(env, warnings)
  const sampler = t.sampling !== undefined ? { ratio: t.sampling, parentBased: true } : (envSampler ?? { ratio: 1, parentBased: true })
  const propagators = t.propagators ?? propagatorsFromEnv(env, warnings) ?? ['tracecontext']
  if (exporter !== 'none' && sampler.ratio === 0 && !sampler.parentBased) exporter = 'none'
  return {
    exporter,
    endpoint,
    ratio: sampler.ratio,
    parentBased: sampler.parentBased,
    propagators: [...new Set(propagators)],
    jaegerUi: t.jaegerUi ? t.jaegerUi.replace(/\/+$/, '') : null,
    maxQueueSize: t.maxQueueSize,
    warnings,
  }
}
