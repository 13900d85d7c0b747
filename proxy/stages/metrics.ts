import type { Direction, Handler, RequestContext, Stage } from '../pipeline/index.js'
import type { AuthzChildren, RequestChild, SidecarMetrics } from '../telemetry/metrics.js'

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
export function createMetricsStage(o: MetricsStageOptions): Stage {
  const { metrics: registry, self } = o
  const inbound = o.direction === 'inbound'
  const clusters = o.clusters ?? new Map<string, WorkloadLabels>()
  const cache = new Map<string, Tail>()
  const authz = new Map<string, AuthzChildren>()

  function childFor(key: string, ctx: RequestContext, status: number, flags: string): RequestChild {
    let tail = cache.get(key)
    if (tail === undefined) cache.set(key, (tail = new Map()))
    let byFlags = tail.get(status)
    if (byFlags === undefined) tail.set(status, (byFlags = new Map()))
    let child = byFlags.get(flags)
    if (child === undefined) {
      const src = inbound ? sourceOf(ctx) : self
      const dst = inbound ? self : ctx.cluster !== null ? (clusters.get(ctx.cluster) ?? UNKNOWN_WORKLOAD) : UNKNOWN_WORKLOAD
      const security = inbound ? ctx.connectionSecurity : dst === UNKNOWN_WORKLOAD ? 'unknown' : 'mutual_tls'
      child = registry.requestChild([
        inbound ? 'destination' : 'source',
        src.workload,
        src.namespace,
        src.principal,
        src.app,
        dst.workload,
        dst.namespace,
        dst.principal,
        dst.service,
        dst.serviceName,
        'http',
        String(status),
        flags,
        security,
      ])
      byFlags.set(flags, child)
    }
    return child
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
        childFor(key, ctx, status, flags).record(performance.now() - ctx.startMono, ctx.bytesReceived, ctx.bytesSent)
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
