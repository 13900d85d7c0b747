// trace: one span per request (SERVER inbound, CLIENT outbound) exported to OpenTelemetry's
// InMemorySpanExporter through the sidecar's own Tracing (proxy/telemetry/tracing.ts), its
// attributes, the propagation headers left in ctx.traceHeaders for sanitize, and no span at all
// for an unsampled request.
import { afterEach, describe, expect, test } from 'vitest'
import { SpanKind, SpanStatusCode } from '@opentelemetry/api'
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base'
import type { Direction, Handler, RequestContext } from '../../../proxy/pipeline/index.js'
import type { Decision } from '../../../proxy/policy/index.js'
import { createTracing, resolveTracingSettings, type Tracing } from '../../../proxy/telemetry/index.js'
import type { PropagatorName } from '../../../proxy/telemetry/settings.js'
import { createTraceStage } from '../../../proxy/stages/index.js'
import { FRONTEND, peer, sanitizedContext, type RequestOptions, type TestContext } from './context.js'

const CALLER_TRACE = '0af7651916cd43dd8448eb211c80319c'
const CALLER_SPAN = 'b7ad6b7169203331'
const DENY: Decision = { action: 'DENY', policy: 'shop/deny-batch', ruleIndex: 0, reason: 'deny by shop/deny-batch rules[0]', dryRun: [], audit: null }

const open: Tracing[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.shutdown()))
})

async function tracer(o: { sampling?: number; propagators?: PropagatorName[] } = {}) {
  const exporter = new InMemorySpanExporter()
  const tracing = await createTracing(
    resolveTracingSettings({ maxQueueSize: 1000, sampling: o.sampling ?? 1, ...(o.propagators ? { propagators: o.propagators } : {}) }),
    { workload: 'orders', namespace: 'shop' },
    {},
    { exporter, scheduledDelayMs: 1 },
  )
  if (!tracing) throw new Error('test: tracing is off')
  open.push(tracing)
  return {
    tracing,
    /** Every span finished so far, once the batch processor has handed them to the exporter. */
    spans: async (): Promise<ReadableSpan[]> => {
      await tracing.forceFlush()
      return exporter.getFinishedSpans()
    },
  }
}

const respond = (status: number, over: Partial<RequestContext> = {}): Handler => async (ctx) => {
  ctx.res.writeHead(status, {})
  Object.assign(ctx, over)
}

async function traced(t: Tracing, direction: Direction, o: RequestOptions, next: Handler, opts: { jaegerUi?: string; clusterPrincipals?: Map<string, string> } = {}): Promise<TestContext> {
  const ctx = sanitizedContext({ direction, ...o })
  await createTraceStage({ tracing: t, direction, jaegerUi: opts.jaegerUi ?? null, ...(opts.clusterPrincipals ? { clusterPrincipals: opts.clusterPrincipals } : {}) })(next)(ctx)
  return ctx
}

describe('trace: sampled requests', () => {
  test('inbound: one SERVER span with the HTTP attributes; its ids are on ctx and in the traceparent for upstream', async () => {
    const { tracing, spans } = await tracer()
    const ctx = await traced(tracing, 'inbound', { peer: peer(FRONTEND), target: '/orders', localPort: 15006, sourceIp: '10.0.0.7', sourcePort: 40123, rawHeaders: ['User-Agent', 'curl/8'] }, respond(200))
    const all = await spans()
    expect(all).toHaveLength(1)
    const s = all[0]!
    expect(s.kind).toBe(SpanKind.SERVER)
    expect(s.name).toBe('GET')
    expect(s.attributes).toMatchObject({
      'http.request.method': 'GET',
      'url.path': '/orders',
      'url.scheme': 'https',
      'http.response.status_code': 200,
      'server.address': 'orders.shop',
      'server.port': 15006,
      'client.address': '10.0.0.7',
      'network.peer.port': 40123,
      'user_agent.original': 'curl/8',
      'remora.request_id': 'req-1',
      'remora.response_flags': '-',
      'remora.peer.principal': FRONTEND,
    })
    expect(s.status.code).toBe(SpanStatusCode.UNSET)
    expect(ctx.traceId).toBe(s.spanContext().traceId)
    expect(ctx.spanId).toBe(s.spanContext().spanId)
    expect(ctx.traceHeaders).toEqual({ traceparent: `00-${ctx.traceId}-${ctx.spanId}-01` })
  })

  test('outbound: one CLIENT span with the upstream endpoint, url.full without the query, the expected principal', async () => {
    const { tracing, spans } = await tracer()
    const cluster = 'outbound|9090||payments.shop'
    await traced(tracing, 'outbound', { host: 'payments.shop:9090', target: '/charge?card=4111111111111111' }, respond(200, { cluster, upstreamHost: '10.1.0.1:15006' }), {
      clusterPrincipals: new Map([[cluster, 'spiffe://cluster.local/ns/shop/sa/payments']]),
    })
    const [s] = await spans()
    expect(s!.kind).toBe(SpanKind.CLIENT)
    expect(s!.attributes).toMatchObject({
      'url.full': 'http://payments.shop:9090/charge',
      'server.port': 9090,
      'network.peer.address': '10.1.0.1',
      'network.peer.port': 15006,
      'remora.upstream.cluster': cluster,
      'remora.peer.principal': 'spiffe://cluster.local/ns/shop/sa/payments',
    })
    expect(JSON.stringify(s!.attributes)).not.toContain('4111111111111111')
  })

  test("a caller's sampled traceparent: the span is its child, in its trace", async () => {
    const { tracing, spans } = await tracer({ sampling: 0 })
    const ctx = await traced(tracing, 'inbound', { rawHeaders: ['traceparent', `00-${CALLER_TRACE}-${CALLER_SPAN}-01`] }, respond(200))
    const [s] = await spans()
    expect(s!.spanContext().traceId).toBe(CALLER_TRACE)
    expect(s!.parentSpanContext?.spanId).toBe(CALLER_SPAN)
    expect(ctx.traceHeaders!.traceparent).toBe(`00-${CALLER_TRACE}-${s!.spanContext().spanId}-01`)
  })

  test('a denial: remora.authz.* and the response flags on the span, status ERROR with the code', async () => {
    const { tracing, spans } = await tracer()
    await traced(tracing, 'inbound', { peer: peer() }, respond(403, { decision: DENY, flags: ['AZ'], errorCode: 'REMORA_ERR_AUTHZ_DENIED' }))
    const [s] = await spans()
    expect(s!.attributes).toMatchObject({
      'remora.authz.decision': 'DENY',
      'remora.authz.policy': 'shop/deny-batch',
      'remora.authz.reason': 'deny by shop/deny-batch rules[0]',
      'remora.response_flags': 'AZ',
      'remora.error_code': 'REMORA_ERR_AUTHZ_DENIED',
      'error.type': 'REMORA_ERR_AUTHZ_DENIED',
    })
    expect(s!.status).toEqual({ code: SpanStatusCode.ERROR, message: 'REMORA_ERR_AUTHZ_DENIED' })
  })

  test("an app's 404: an error on the CLIENT span, the caller's business on the SERVER span", async () => {
    const { tracing, spans } = await tracer()
    await traced(tracing, 'inbound', {}, respond(404))
    await traced(tracing, 'outbound', {}, respond(404))
    const all = await spans()
    expect(all.find((s) => s.kind === SpanKind.SERVER)!.status.code).toBe(SpanStatusCode.UNSET)
    expect(all.find((s) => s.kind === SpanKind.CLIENT)!.status.code).toBe(SpanStatusCode.ERROR)
  })

  test('the span is ended when next throws, and the error propagates', async () => {
    const { tracing, spans } = await tracer()
    const boom = new Error('boom')
    await expect(traced(tracing, 'inbound', {}, async () => {
      throw boom
    })).rejects.toBe(boom)
    expect(await spans()).toHaveLength(1)
  })

  test('with --jaeger-ui a sampled request gets ctx.traceLink to its trace', async () => {
    const { tracing } = await tracer()
    const ctx = await traced(tracing, 'inbound', {}, respond(200), { jaegerUi: 'http://127.0.0.1:16686' })
    expect(ctx.traceLink).toBe(`http://127.0.0.1:16686/trace/${ctx.traceId}`)
  })

  test('B3 propagation (the SDK path): the b3 header is written for upstream', async () => {
    const { tracing, spans } = await tracer({ propagators: ['b3'] })
    expect(tracing.w3c).toBeNull()
    const ctx = await traced(tracing, 'outbound', {}, respond(200))
    const [s] = await spans()
    expect(ctx.traceHeaders).toEqual({ b3: `${s!.spanContext().traceId}-${s!.spanContext().spanId}-1` })
  })
})

describe('trace: unsampled requests', () => {
  test('sampling 0 and no caller context: no span, but ids and an unsampled traceparent for upstream', async () => {
    const { tracing, spans } = await tracer({ sampling: 0 })
    const ctx = await traced(tracing, 'inbound', {}, respond(200), { jaegerUi: 'http://127.0.0.1:16686' })
    expect(await spans()).toHaveLength(0)
    expect(ctx.traceId).toMatch(/^[0-9a-f]{32}$/)
    expect(ctx.traceHeaders).toEqual({ traceparent: `00-${ctx.traceId}-${ctx.spanId}-00` })
    expect(ctx.traceLink).toBeNull()
  })

  test("a caller's unsampled traceparent is honoured: no span, the decision and tracestate travel on", async () => {
    const { tracing, spans } = await tracer({ sampling: 1 })
    const ctx = await traced(tracing, 'inbound', { rawHeaders: ['traceparent', `00-${CALLER_TRACE}-${CALLER_SPAN}-00`, 'tracestate', 'vendor=x'] }, respond(200))
    expect(await spans()).toHaveLength(0)
    expect(ctx.traceHeaders).toEqual({ traceparent: `00-${CALLER_TRACE}-${ctx.spanId}-00`, tracestate: 'vendor=x' })
  })
})
