import type { PathNormalization } from '../policy/index.js'
import { compose, type Stage, type Handler } from '../pipeline/index.js'
import {
  createAccessLogStage,
  createOutboundRouteStage,
  createRescueStage,
  createSanitizeStage,
  createUpstreamHandler,
  type AccessLogSink,
  type RouteTable,
} from '../stages/index.js'

export interface OutboundHandlerOptions {
  readonly pathNormalization: PathNormalization
  readonly routes: RouteTable
  readonly accessLog: AccessLogSink
  readonly onInternalError: (err: unknown) => void
  /** The terminal handler of the forwarding engine; absent: the node:http engine's (undici pools). */
  readonly upstream?: Handler
  /** `trace` then `metrics` (either may be absent): observability sits right inside the access log. */
  readonly observe?: readonly Stage[]
}

// Outer → inner: accessLog → trace (client span, injected upstream) → metrics (reporter=source)
// → rescue → sanitize → route (Host → cluster → endpoint) → upstream (mTLS, secure naming).
export function buildOutboundHandler(o: OutboundHandlerOptions): Handler {
  return compose(
    [
      createAccessLogStage(o.accessLog),
      ...(o.observe ?? []),
      createRescueStage({ onInternalError: o.onInternalError }),
      createSanitizeStage({ direction: 'outbound', pathNormalization: o.pathNormalization }),
      createOutboundRouteStage(o.routes),
    ],
    o.upstream ?? createUpstreamHandler(),
  )
}
