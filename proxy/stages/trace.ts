import { ROOT_CONTEXT, SpanKind, SpanStatusCode, defaultTextMapGetter, defaultTextMapSetter, trace as otelTrace, type Attributes } from '@opentelemetry/api'
import type { Direction, Handler, RequestContext, Stage } from '../pipeline/index.js'
import type { Tracing } from '../telemetry/tracing.js'
import { newSpanId, newTraceId, parseTraceParent, traceIdRatioSampled } from '../telemetry/w3c.js'

export interface TraceStageOptions {
  readonly tracing: Tracing
  readonly direction: Direction
  /** Jaeger UI base URL (no trailing slash), or null. */
  readonly jaegerUi: string | null
  /** Outbound: the principal secure naming requires per cluster (when a cluster names exactly one). */
  readonly clusterPrincipals?: ReadonlyMap<string, string>
}

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'])

function splitHostPort(address: string | null): [string | null, number | null] {
  if (!address) return [null, null]
  const i = address.lastIndexOf(':')
  return i < 0 ? [address, null] : [address.slice(0, i).replace(/^\[|\]$/g, ''), Number(address.slice(i + 1))]
}

// Between accessLog and metrics, outside rescue, so the span sees proxy-generated responses.
// One span per request: SERVER inbound, CLIENT outbound, both named and attributed per the OTel
// HTTP semantic conventions plus remora.*. The context is extracted from the request and this
// span is injected into what goes upstream (via ctx.traceHeaders, which `sanitize` applies), also
// when the span is not sampled, so the next hop honours the decision. Unsampled spans record
// nothing: the cost is the extract, an id and the inject. With W3C propagation (the default) an
// unsampled request does not touch the SDK at all: parse, decide, mint a span id, write the next
// traceparent (tracing.w3c). No query strings, no header values beyond the user agent, never
// credentials.
export function createTraceStage(o: TraceStageOptions): Stage {
  const { tracer, propagator, w3c } = o.tracing
  const inbound = o.direction === 'inbound'
  const kind = inbound ? SpanKind.SERVER : SpanKind.CLIENT
  const jaegerUi = o.jaegerUi === null ? null : `${o.jaegerUi}/trace/`
  const clusterPrincipals = o.clusterPrincipals ?? new Map<string, string>()
  // Endpoint addresses come from config: split each once, not per span.
  const peers = new Map<string, [string | null, number | null]>()
  const peerOf = (address: string | null): [string | null, number | null] => {
    if (address === null) return [null, null]
    let p = peers.get(address)
    if (p === undefined) peers.set(address, (p = splitHostPort(address)))
    return p
  }

  function finish(span: ReturnType<typeof tracer.startSpan>, ctx: RequestContext): void {
    const status = ctx.flags.includes('DC') && !ctx.res.headersSent ? 0 : ctx.res.statusCode
    const method = KNOWN_METHODS.has(ctx.method) ? ctx.method : '_OTHER'
    const a: Attributes = {
      'http.request.method': method,
      'url.path': ctx.path || '-', // empty only when sanitize refused the target
      'url.scheme': inbound && ctx.connectionSecurity === 'mutual_tls' ? 'https' : 'http',
      'network.protocol.version': ctx.req.httpVersion,
      'remora.request_id': ctx.requestId,
      'remora.response_flags': ctx.flags.length ? ctx.flags.join(',') : '-',
    }
    if (method === '_OTHER') a['http.request.method_original'] = ctx.method
    if (status > 0) a['http.response.status_code'] = status
    if (ctx.host) a['server.address'] = ctx.host
    const ua = ctx.req.headers['user-agent']
    if (ua) a['user_agent.original'] = ua
    if (ctx.cluster) a['remora.upstream.cluster'] = ctx.cluster
    if (ctx.upstreamMs !== null) a['remora.upstream.service_time_ms'] = Math.round(ctx.upstreamMs * 1000) / 1000
    if (ctx.errorCode) a['remora.error_code'] = ctx.errorCode
    if (inbound) {
      a['server.port'] = ctx.localPort
      a['client.address'] = ctx.sourceIp
      a['network.peer.address'] = ctx.sourceIp
      a['network.peer.port'] = ctx.sourcePort
      if (ctx.peer) a['remora.peer.principal'] = ctx.peer.uri
    } else {
      if (ctx.hostPort !== null) a['server.port'] = ctx.hostPort
      a['url.full'] = `http://${ctx.authority}${ctx.path}` // the query is left out: it may carry secrets
      const [peerHost, peerPort] = peerOf(ctx.upstreamHost)
      if (peerHost) a['network.peer.address'] = peerHost
      if (peerPort) a['network.peer.port'] = peerPort
      const expected = ctx.cluster ? clusterPrincipals.get(ctx.cluster) : undefined
      if (expected) a['remora.peer.principal'] = expected
    }
    const d = ctx.decision
    if (d) {
      a['remora.authz.decision'] = d.action
      a['remora.authz.policy'] = d.policy ?? '-'
      a['remora.authz.reason'] = d.reason
    }
    // Server spans: 5xx is an error, 4xx is the caller's; client spans: both (OTel HTTP semconv).
    // A proxy-generated response (a denial, NR, UF, UT…) is always an error: the mesh said no.
    const failed = ctx.errorCode !== null || status >= 500 || (!inbound && status >= 400) || status === 0
    if (failed) {
      a['error.type'] = ctx.errorCode ?? (status > 0 ? String(status) : 'DC')
      span.setStatus({ code: SpanStatusCode.ERROR, message: ctx.errorCode ?? undefined })
    }
    span.setAttributes(a)
    span.end()
  }

  return function trace(next: Handler): Handler {
    return async function traceStage(ctx: RequestContext) {
      if (w3c !== null) {
        const p = parseTraceParent(ctx.req.headers.traceparent)
        const traceId = p !== null ? p.traceId : newTraceId()
        const sampled = p !== null && w3c.parentBased ? (p.flags & 1) === 1 : traceIdRatioSampled(traceId, w3c.ratio)
        if (!sampled) {
          const spanId = newSpanId()
          ctx.traceId = traceId
          ctx.spanId = spanId
          const ts = p !== null ? ctx.req.headers.tracestate : undefined
          ctx.traceHeaders = ts ? { traceparent: `00-${traceId}-${spanId}-00`, tracestate: Array.isArray(ts) ? ts.join(',') : ts } : { traceparent: `00-${traceId}-${spanId}-00` }
          return next(ctx)
        }
        if (p === null) w3c.stageTraceId(traceId)
      }
      const parent = propagator.extract(ROOT_CONTEXT, ctx.req.headers, defaultTextMapGetter)
      const span = tracer.startSpan(KNOWN_METHODS.has(ctx.method) ? ctx.method : 'HTTP', { kind }, parent)
      w3c?.stageTraceId(null) // never left for the next root span, whatever this one used
      const sc = span.spanContext()
      ctx.traceId = sc.traceId
      ctx.spanId = sc.spanId
      const carrier: Record<string, string> = {}
      propagator.inject(otelTrace.setSpan(parent, span), carrier, defaultTextMapSetter)
      ctx.traceHeaders = carrier
      if (!span.isRecording()) return next(ctx)
      if (jaegerUi !== null) ctx.traceLink = jaegerUi + sc.traceId
      try {
        await next(ctx)
      } finally {
        finish(span, ctx)
      }
    }
  }
}
