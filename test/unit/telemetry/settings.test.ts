import { describe, expect, test } from 'vitest'
import { SidecarConfigSchema } from '../../../proxy/config/schema.js'
import { parseProxyArgs } from '../../../proxy/main.js'
import { pickOtelEnv, resolveTracingSettings } from '../../../proxy/telemetry/index.js'

const tracing = (t: object = {}) => SidecarConfigSchema.shape.telemetry.parse({ tracing: t }).tracing

describe('tracing settings: sidecar.yaml and flags, then OTEL_* variables, then defaults', () => {
  test('nothing configured anywhere: tracing is off (no spans to an address nobody named)', () => {
    expect(resolveTracingSettings(tracing(), {}).exporter).toBe('none')
  })

  test('an endpoint alone turns on OTLP http/protobuf, with the signal path added; W3C, ratio 1, parent-based', () => {
    const s = resolveTracingSettings(tracing({ endpoint: 'http://localhost:4318' }), {})
    expect(s).toMatchObject({ exporter: 'otlp', endpoint: 'http://localhost:4318/v1/traces', ratio: 1, parentBased: true, propagators: ['tracecontext'] })
  })

  test('OTEL_EXPORTER_OTLP_ENDPOINT gets /v1/traces; OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as is and wins', () => {
    expect(resolveTracingSettings(tracing(), { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }).endpoint).toBe('http://collector:4318/v1/traces')
    expect(resolveTracingSettings(tracing(), { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:4318/custom' }).endpoint).toBe('http://b:4318/custom')
  })

  test('the config wins over the variables, field by field', () => {
    const env = { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://env:4318/v1/traces', OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.5', OTEL_PROPAGATORS: 'b3multi,jaeger' }
    expect(resolveTracingSettings(tracing(), env)).toMatchObject({ endpoint: 'http://env:4318/v1/traces', ratio: 0.5, parentBased: true, propagators: ['b3multi', 'jaeger'] })
    const s = resolveTracingSettings(tracing({ endpoint: 'http://file:4318', sampling: 0.01, propagators: ['tracecontext', 'b3'] }), env)
    expect(s).toMatchObject({ endpoint: 'http://file:4318/v1/traces', ratio: 0.01, propagators: ['tracecontext', 'b3'] })
  })

  test('a flag wins over the variable (flags become config fields)', () => {
    const args = parseProxyArgs(['--trace-sampling', '0.01', '--trace-endpoint', 'http://flag:4318', '--trace-propagators', 'b3,jaeger', '--jaeger-ui', 'http://localhost:16686', '--metrics-port', '0', '--access-log-format', 'text'])
    expect(args.overrides).toEqual(
      expect.arrayContaining([
        ['telemetry.tracing.sampling', 0.01],
        ['telemetry.tracing.endpoint', 'http://flag:4318'],
        ['telemetry.tracing.propagators', ['b3', 'jaeger']],
        ['telemetry.tracing.jaegerUi', 'http://localhost:16686'],
        ['telemetry.metrics.port', 0],
        ['accessLog.format', 'text'],
      ]),
    )
    const s = resolveTracingSettings(tracing({ sampling: 0.01, endpoint: 'http://flag:4318' }), { OTEL_TRACES_SAMPLER: 'always_on', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://env:4318' })
    expect(s).toMatchObject({ ratio: 0.01, endpoint: 'http://flag:4318/v1/traces' })
  })

  test('OTEL_TRACES_EXPORTER: otlp with the grpc protocol, jaeger, none; unknown values are ignored with a warning', () => {
    expect(resolveTracingSettings(tracing(), { OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).toMatchObject({ exporter: 'otlp-grpc', endpoint: 'http://localhost:4317' })
    expect(resolveTracingSettings(tracing(), { OTEL_TRACES_EXPORTER: 'jaeger' })).toMatchObject({ exporter: 'jaeger', endpoint: null })
    expect(resolveTracingSettings(tracing({ endpoint: 'http://x:4318' }), { OTEL_TRACES_EXPORTER: 'none' }).exporter).toBe('none')
    const w = resolveTracingSettings(tracing(), { OTEL_TRACES_EXPORTER: 'zipkin', OTEL_PROPAGATORS: 'tracecontext,xray', OTEL_TRACES_SAMPLER: 'weird' })
    expect(w.exporter).toBe('none')
    expect(w.propagators).toEqual(['tracecontext'])
    expect(w.warnings).toHaveLength(3)
  })

  test('OTEL_TRACES_SAMPLER variants; always_off with no parent-based sampling turns tracing off', () => {
    const on = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }
    expect(resolveTracingSettings(tracing(), { ...on, OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' })).toMatchObject({ ratio: 0.25, parentBased: false })
    expect(resolveTracingSettings(tracing(), { ...on, OTEL_TRACES_SAMPLER: 'parentbased_always_off' })).toMatchObject({ ratio: 0, parentBased: true, exporter: 'otlp' })
    expect(resolveTracingSettings(tracing(), { ...on, OTEL_TRACES_SAMPLER: 'always_off' }).exporter).toBe('none')
    expect(resolveTracingSettings(tracing(), { ...on, OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '7' }).warnings).toHaveLength(1)
  })

  test('pickOtelEnv keeps only the OTEL_* names remora reads, never anything else', () => {
    expect(pickOtelEnv({ OTEL_PROPAGATORS: 'b3', OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer x', HOME: '/root', OTEL_TRACES_SAMPLER: ' ' })).toEqual({ OTEL_PROPAGATORS: 'b3' })
  })

  test('invalid config fails at the boundary: sampling outside 0..1, unknown propagator, non-URL endpoint', () => {
    const bad = (t: object): boolean => !SidecarConfigSchema.shape.telemetry.safeParse({ tracing: t }).success
    expect(bad({ sampling: 1.5 })).toBe(true)
    expect(bad({ propagators: ['xray'] })).toBe(true)
    expect(bad({ endpoint: 'localhost:4318' })).toBe(true)
    expect(bad({ endpoint: 'http://user:s3cret@collector:4318' })).toBe(true)
    expect(bad({ jaegerUi: 'https://admin:pw@jaeger.example' })).toBe(true)
    expect(bad({ sampling: 0.5, propagators: ['b3'], endpoint: 'http://localhost:4318' })).toBe(false)
  })
})
