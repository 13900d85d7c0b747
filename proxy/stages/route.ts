import { canonicalIp } from '../engines/common/index.js'
import { proxyError, type Handler, type RequestContext, type RouteTarget, type Stage } from '../pipeline/index.js'

/** A cluster as the hot path sees it: endpoints with their pools, built at config time. */
export interface RoutedCluster {
  readonly name: string
  readonly targets: readonly RouteTarget[]
  next: number
}

/** host, and host:port, lower-cased → cluster. */
export type RouteTable = ReadonlyMap<string, RoutedCluster>

/** Routing by original destination, for a connection that interception redirected. */
export interface DestinationRoutes {
  /** `ip:port` and `ip` (service VIPs, endpoint IPs) → cluster. */
  readonly byDst: ReadonlyMap<string, RoutedCluster>
  /** A request for a host outside the mesh: its target at the original destination, or null when the outbound policy refuses it. */
  readonly external: (ctx: RequestContext, address: string) => Promise<RouteTarget | null>
  /** A pod dialled by its IP (an endpoint's address): its cluster, asking for the port dialled. */
  readonly byEndpoint: (ip: string, port: number) => RoutedCluster | undefined
  /** A cluster by name on a workload port (local bind ports), made once per port. */
  readonly byName: (cluster: string, targetPort: number | null) => RoutedCluster | undefined
}


// Outbound: the Host (or the absolute-form authority) picks the cluster, with the port the app
// dialled when the Host has none; failing that, the original destination (a service VIP or a pod
// IP); failing that, a host outside the mesh goes to its original destination or is refused
// (outbound traffic policy). An endpoint is chosen per request (round robin), so a keep-alive
// connection from the app never pins one endpoint.
export function createOutboundRouteStage(table: RouteTable, dst?: DestinationRoutes): Stage {
  return function route(next: Handler): Handler {
    return async function routeStage(ctx: RequestContext) {
      const od = ctx.originalDst
      const fixed = ctx.fixedRoute
      let cluster = fixed !== null && dst ? dst.byName(fixed.cluster, fixed.targetPort) : undefined
      if (fixed !== null && !cluster) throw proxyError('REMORA_ERR_ROUTE_NOT_FOUND', `no cluster "${fixed.cluster}" for this local port`)
      cluster ??= table.get(ctx.authority) ?? (od !== null && ctx.hostPort === null ? table.get(`${ctx.host}:${od.port}`) : undefined) ?? table.get(ctx.host)
      if (!cluster && od !== null && dst) {
        const ip = canonicalIp(od.address)
        cluster = dst.byDst.get(`${ip}:${od.port}`) ?? dst.byDst.get(ip) ?? dst.byEndpoint(ip, od.port)
        if (!cluster) {
          const address = od.family === 6 ? `[${od.address}]:${od.port}` : `${od.address}:${od.port}`
          const t = await dst.external(ctx, address)
          if (t === null) throw proxyError('REMORA_ERR_REGISTRY_ONLY', `REGISTRY_ONLY: host "${ctx.host}" (${address}) is not a known service`)
          ctx.cluster = t.cluster
          ctx.route = t
          ctx.upstreamHost = t.address
          return next(ctx)
        }
      }
      if (!cluster) throw proxyError('REMORA_ERR_ROUTE_NOT_FOUND', `no cluster for host "${ctx.host}"`)
      ctx.cluster = cluster.name
      const n = cluster.targets.length
      if (n === 0) throw proxyError('REMORA_ERR_UPSTREAM_NO_HEALTHY', `cluster ${cluster.name} has no endpoints`)
      const target = cluster.targets[cluster.next++ % n]!
      if (cluster.next >= 1 << 30) cluster.next = 0
      ctx.route = target
      ctx.upstreamHost = target.address
      return next(ctx)
    }
  }
}

// Inbound: the local app, on the port the caller asked for (a peer's SNI, or the port a plaintext
// caller was redirected from) at the address it reached the pod on, else its configured address.
export function createInboundRouteStage(app: RouteTarget, appOnPort?: (port: number, host: string) => RouteTarget): Stage {
  return function route(next: Handler): Handler {
    return async function routeStage(ctx: RequestContext) {
      const od = ctx.originalDst
      const t = od === null || appOnPort === undefined ? app : appOnPort(od.port, od.address)
      ctx.cluster = t.cluster
      ctx.upstreamHost = t.address
      ctx.route = t
      return next(ctx)
    }
  }
}
