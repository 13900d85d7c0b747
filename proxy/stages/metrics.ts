import type { Direction, Handler, RequestContext, Stage } from '../pipeline/index.js'
import type { AuthzChildren, MessageChildren, RequestChild, SidecarMetrics } from '../telemetry/metrics.js'
import { grpcFacts, grpcStatusLabel } from '../telemetry/grpc.js'

/** One side of a request as Istio's labels describe it. All values bounded (config or verified identity). */
export interface WorkloadLabels {
  readonly workload: string
  readonly namespace: string
  readonly principal: string
  readonly app: string
  /** Istio's destination_service (an FQDN) and destination_service_name (its short name). */
  readonly service: string
  readonly serviceName: string
}

export const UNKNOWN_WORKLOAD: WorkloadLabels = { workload: 'unknown', namespace: 'unknown', principal: 'unknown', app: 'unknown', service: 'unknown', serviceName: 'unknown' }

export interface MetricsStageOptions {
  readonly metrics: SidecarMetrics
  readonly direction: Direction
  /** This workload: the destination inbound (reporter=destination), the source outbound (reporter=source). */
  readonly self: WorkloadLabels
  /** Outbound: the destination of each cluster, computed when the config is compiled. */
  readonly clusters?: ReadonlyMap<string, WorkloadLabels>
}

// Label values for the caller of an inbound request, from its verified SPIFFE ID only (Istio would
// read peer metadata; the service account stands in for the workload and app names).
function sourceOf(ctx: RequestContext): WorkloadLabels {
  const p = ctx.peer
  if (!p) return UNKNOWN_WORKLOAD
  const sa = p.serviceAccount ?? 'unknown'
  return { workload: sa, namespace: p.namespace ?? 'unknown', principal: p.uri, app: sa, service: 'unknown', serviceName: 'unknown' }
}

type Tail = Map<number, Map<string, RequestChild>>

// Between trace and rescue: sees the final status and flags of every request, denials included.
// Istio's four request metrics, recorded through children cached per label combination in nested
// maps (source or cluster → status → flags), so a request costs three map lookups and a few
// additions; the cache is per compiled config, the counters behind it live for the process.
// A gRPC call (only HTTP/2 requests can be one: one string comparison for every other request)
// has its own cache whose innermost key adds its grpc-status, and Istio's two message counters.
export function createMetricsStage(o: MetricsStageOptions): Stage {
  const { metrics: registry, self } = o
  const inbound = o.direction === 'inbound'
  const clusters = o.clusters ?? new Map<string, WorkloadLabels>()
  const cache = new Map<string, Tail>()
  const grpcCache = new Map<string, Tail>()
  const messages = new Map<string, MessageChildren>()
  const authz = new Map<string, AuthzChildren>()

  /** The ten reporter and peer labels of a request (ISTIO_MESSAGE_LABELS), and its security label. */
  function peerLabels(ctx: RequestContext): { values: string[]; security: string } {
    const src = inbound ? sourceOf(ctx) : self
    const dst = inbound ? self : ctx.cluster !== null ? (clusters.get(ctx.cluster) ?? UNKNOWN_WORKLOAD) : UNKNOWN_WORKLOAD
    const security = inbound ? ctx.connectionSecurity : dst === UNKNOWN_WORKLOAD ? 'unknown' : 'mutual_tls'
    return {
      values: [inbound ? 'destination' : 'source', src.workload, src.namespace, src.principal, src.app, dst.workload, dst.namespace, dst.principal, dst.service, dst.serviceName],
      security,
    }
  }

  /** `inner` is the innermost cache key: the flags (HTTP), or flags and grpc-status (gRPC). */
  function childFor(c: Map<string, Tail>, key: string, ctx: RequestContext, status: number, inner: string, flags: string, grpcStatus: string | null): RequestChild {
    let tail = c.get(key)
    if (tail === undefined) c.set(key, (tail = new Map()))
    let byFlags = tail.get(status)
    if (byFlags === undefined) tail.set(status, (byFlags = new Map()))
    let child = byFlags.get(inner)
    if (child === undefined) {
      const { values, security } = peerLabels(ctx)
      child = registry.requestChild([...values, grpcStatus === null ? 'http' : 'grpc', String(status), flags, security, grpcStatus ?? ''])
      byFlags.set(inner, child)
    }
    return child
  }

  function messagesFor(key: string, ctx: RequestContext): MessageChildren {
    let m = messages.get(key)
    if (m === undefined) messages.set(key, (m = registry.messageChildren(peerLabels(ctx).values)))
    return m
  }

  function authzFor(policy: string, mode: 'enforce' | 'dry_run'): AuthzChildren {
    const key = mode === 'enforce' ? policy : `\u0000${policy}`
    let c = authz.get(key)
    if (c === undefined) authz.set(key, (c = registry.authzChildren(policy, mode)))
    return c
  }

  return function metrics(next: Handler): Handler {
    return async function metricsStage(ctx: RequestContext) {
      try {
        await next(ctx)
      } finally {
        const f = ctx.flags
        const flags = f.length === 0 ? '-' : f.length === 1 ? f[0]! : f.join(',')
        const status = f.includes('DC') && !ctx.res.headersSent ? 0 : ctx.res.statusCode
        const key = inbound ? (ctx.peer === null ? '' : ctx.peer.uri) : (ctx.cluster ?? '')
        const g = ctx.req.httpVersion === '2.0' ? grpcFacts(ctx) : undefined
        if (g === undefined) childFor(cache, key, ctx, status, flags, flags, null).record(performance.now() - ctx.startMono, ctx.bytesReceived, ctx.bytesSent)
        else {
          const gs = grpcStatusLabel(g, status)
          childFor(grpcCache, key, ctx, status, `${flags}\u0000${gs}`, flags, gs).record(performance.now() - ctx.startMono, ctx.bytesReceived, ctx.bytesSent)
          const m = messagesFor(key, ctx)
          m.request.value += g.requestMessages
          m.response.value += g.responseMessages
        }
        const d = ctx.decision
        if (d !== null) {
          const c = authzFor(d.policy ?? '-', 'enforce')
          ;(d.action === 'ALLOW' ? c.allow : c.deny).value++
          for (const r of d.dryRun) if (r.matched) (r.action === 'DENY' ? authzFor(r.policy, 'dry_run').deny : authzFor(r.policy, 'dry_run').allow).value++
        }
      }
    }
  }
}
