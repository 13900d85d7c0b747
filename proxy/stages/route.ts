import { proxyError, type Handler, type RequestContext, type RouteTarget, type Stage } from '../pipeline/index.js'

/** A cluster as the hot path sees it: endpoints with their pools, built at config time. */
export interface RoutedCluster {
  readonly name: string
  readonly targets: readonly RouteTarget[]
  next: number
}

/** host, and host:port, lower-cased → cluster. */
export type RouteTable = ReadonlyMap<string, RoutedCluster>

// Outbound: the Host (or the absolute-form authority) picks the cluster; an endpoint is chosen
// per request (round robin), so a keep-alive connection from the app never pins one endpoint.
export function createOutboundRouteStage(table: RouteTable): Stage {
  return function route(next: Handler): Handler {
    return async function routeStage(ctx: RequestContext) {
      const cluster = table.get(ctx.authority) ?? table.get(ctx.host)
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

// Inbound: there is one upstream, the local app.
export function createInboundRouteStage(app: RouteTarget): Stage {
  return function route(next: Handler): Handler {
    return async function routeStage(ctx: RequestContext) {
      ctx.cluster = app.cluster
      ctx.upstreamHost = app.address
      ctx.route = app
      return next(ctx)
    }
  }
}
