// The SDK-free W3C path must decide exactly as the SDK would: parsing is checked against OTel's
// W3CTraceContextPropagator (cases from the W3C Trace Context spec, §3.2 and its test suite), the
// ratio decision against OTel's TraceIdRatioBasedSampler on random trace ids.
import { ROOT_CONTEXT, defaultTextMapGetter, trace } from '@opentelemetry/api'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace-base'
import { SamplingDecision } from '@opentelemetry/sdk-trace-base'
import { describe, expect, test } from 'vitest'
import { newSpanId, newTraceId, parseTraceParent, traceIdRatioSampled } from '../../../proxy/telemetry/w3c.js'

const TID = '4bf92f3577b34da6a3ce929d0e0e4736'
const SID = '00f067aa0ba902b7'

const cases: [string, string][] = [
  ['valid, sampled', `00-${TID}-${SID}-01`],
  ['valid, not sampled', `00-${TID}-${SID}-00`],
  ['other flag bits kept', `00-${TID}-${SID}-03`],
  ['leading space', ` 00-${TID}-${SID}-01`],
  ['trailing space', `00-${TID}-${SID}-01 `],
  ['version ff is invalid', `ff-${TID}-${SID}-01`],
  ['version 00 with more data is invalid', `00-${TID}-${SID}-01-extra`],
  ['a future version may carry more data', `cc-${TID}-${SID}-01-what-the-future-will-be-like`],
  ['a future version with junk right after the flags', `cc-${TID}-${SID}-01x`],
  ['all-zero trace id', `00-${'0'.repeat(32)}-${SID}-01`],
  ['all-zero span id', `00-${TID}-${'0'.repeat(16)}-01`],
  ['upper-case hex', `00-${TID.toUpperCase()}-${SID}-01`],
  ['short trace id', `00-${TID.slice(1)}-${SID}-01`],
  ['long span id', `00-${TID}-${SID}0-01`],
  ['non-hex flags', `00-${TID}-${SID}-0g`],
  ['non-hex version', `0g-${TID}-${SID}-01`],
  ['wrong separator', `00_${TID}-${SID}-01`],
  ['empty', ''],
  ['garbage', 'not a traceparent at all, but 55 characters long, or so!!'],
]

describe('parseTraceParent agrees with OTel W3CTraceContextPropagator', () => {
  const otel = new W3CTraceContextPropagator()
  test.each(cases)('%s', (_what, header) => {
    const sc = trace.getSpanContext(otel.extract(ROOT_CONTEXT, { traceparent: header }, defaultTextMapGetter))
    const ours = parseTraceParent(header)
    if (!sc) expect(ours).toBeNull()
    else expect(ours).toEqual({ traceId: sc.traceId, spanId: sc.spanId, flags: sc.traceFlags })
  })
  test('a repeated header: the first one counts, as in OTel', () => {
    expect(parseTraceParent([`00-${TID}-${SID}-01`, `00-${TID}-${SID}-00`])).toEqual({ traceId: TID, spanId: SID, flags: 1 })
    expect(parseTraceParent(undefined)).toBeNull()
  })
})

test('traceIdRatioSampled decides as OTel TraceIdRatioBasedSampler, trace id by trace id', () => {
  for (const ratio of [0, 0.001, 0.01, 0.1, 0.5, 0.99, 1]) {
    const otel = new TraceIdRatioBasedSampler(ratio)
    let sampled = 0
    for (let i = 0; i < 5000; i++) {
      const id = newTraceId()
      const want = otel.shouldSample(ROOT_CONTEXT, id).decision === SamplingDecision.RECORD_AND_SAMPLED
      expect(traceIdRatioSampled(id, ratio), `${ratio} ${id}`).toBe(want)
      if (want) sampled++
    }
    if (ratio === 0) expect(sampled).toBe(0)
    if (ratio === 1) expect(sampled).toBe(5000)
    if (ratio === 0.5) expect(sampled).toBeGreaterThan(2200)
  }
})

test('ids are lower-case hex of the right length, never all zeros, and do not repeat', () => {
  const seen = new Set<string>()
  for (let i = 0; i < 20_000; i++) {
    const t = newTraceId()
    const s = newSpanId()
    expect(t).toMatch(/^[0-9a-f]{32}$/)
    expect(s).toMatch(/^[0-9a-f]{16}$/)
    seen.add(t)
  }
  expect(seen.size).toBe(20_000)
})

test('the trace stage on the W3C path: the sampled root spans are exactly those the ratio picks, with the trace id the decision was made on', async () => {
  const { createTraceStage } = await import('../../../proxy/stages/index.js')
  const { createTracing, resolveTracingSettings } = await import('../../../proxy/telemetry/index.js')
  const { InMemorySpanExporter } = await import('@opentelemetry/sdk-trace-base')
  const exporter = new InMemorySpanExporter()
  const tracing = (await createTracing(resolveTracingSettings({ maxQueueSize: 10_000, endpoint: 'http://127.0.0.1:9/', sampling: 0.3 }), { workload: 'w', namespace: 'ns' }, {}, { exporter, scheduledDelayMs: 1 }))!
  expect(tracing.w3c).not.toBeNull()
  const stage = createTraceStage({ tracing, direction: 'inbound', jaegerUi: null })(async () => {})
  const ctxOf = (headers: Record<string, string>): any => ({
    direction: 'inbound', req: { headers, httpVersion: '1.1' }, res: { statusCode: 200, headersSent: true }, method: 'GET', path: '/x', host: 'h', authority: 'h', hostPort: null, requestId: 'r',
    flags: [], errorCode: null, peer: null, connectionSecurity: 'none', sourceIp: '127.0.0.1', sourcePort: 1, localPort: 2, cluster: null, upstreamHost: null, upstreamMs: null, decision: null,
    traceId: null, spanId: null, traceLink: null, traceHeaders: null,
  })
  const decided: { traceId: string; sampled: boolean; header: string }[] = []
  for (let i = 0; i < 300; i++) {
    const ctx = ctxOf({})
    await stage(ctx)
    decided.push({ traceId: ctx.traceId, sampled: traceIdRatioSampled(ctx.traceId, 0.3), header: ctx.traceHeaders.traceparent })
  }
  // A caller's decision is followed (parent-based), and its tracestate travels on.
  const parentSampled = ctxOf({ traceparent: `00-${TID}-${SID}-01`, tracestate: 'vendor=x' })
  await stage(parentSampled)
  const parentUnsampled = ctxOf({ traceparent: `00-${TID.replace('4', '5')}-${SID}-00`, tracestate: 'vendor=y' })
  await stage(parentUnsampled)
  expect(parentUnsampled.traceHeaders).toEqual({ traceparent: `00-${TID.replace('4', '5')}-${parentUnsampled.spanId}-00`, tracestate: 'vendor=y' })
  await tracing.forceFlush()
  const spans = exporter.getFinishedSpans()
  const sampledIds = new Set(decided.filter((d) => d.sampled).map((d) => d.traceId))
  expect(sampledIds.size).toBeGreaterThan(30)
  expect(sampledIds.size).toBeLessThan(200)
  expect(new Set(spans.filter((s) => !s.parentSpanContext).map((s) => s.spanContext().traceId))).toEqual(sampledIds)
  for (const d of decided) expect(d.header).toMatch(new RegExp(`^00-${d.traceId}-[0-9a-f]{16}-0${d.sampled ? 1 : 0}$`))
  const child = spans.find((s) => s.spanContext().traceId === TID)!
  expect(child.parentSpanContext?.spanId).toBe(SID)
  expect(parentSampled.traceHeaders.traceparent).toBe(`00-${TID}-${child.spanContext().spanId}-01`)
  expect(parentSampled.traceHeaders.tracestate).toBe('vendor=x')
  expect(spans.some((s) => s.spanContext().traceId === TID.replace('4', '5'))).toBe(false)
  await tracing.shutdown()
})
