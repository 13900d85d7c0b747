import type { PathNormalization } from '../policy/index.js'
import { compose, type Handler } from '../pipeline/index.js'
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
}

// Outer → inner: accessLog → rescue → sanitize → route (Host → cluster → endpoint) → upstream
// (mTLS, secure naming). trace (client span, inject) and metrics join after accessLog.
export function buildOutboundHandler(o: OutboundHandlerOptions): Handler {
  return compose(
    [
      createAccessLogStage(o.accessLog),
      createRescueStage({ onInternalError: o.onInternalError }),
      createSanitizeStage({ direction: 'outbound', pathNormalization: o.pathNormalization }),
      createOutboundRouteStage(o.routes),
    ],
    createUpstreamHandler(),
  )
}
