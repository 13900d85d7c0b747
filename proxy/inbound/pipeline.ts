import type { MtlsMode, PathNormalization, WorkloadPolicy } from '../policy/index.js'
import { compose, type Handler, type RequestContext, type RouteTarget } from '../pipeline/index.js'
import {
  createAccessLogStage,
  createAuthnMtlsStage,
  createAuthzStage,
  createInboundRouteStage,
  createRescueStage,
  createSanitizeStage,
  createUpstreamHandler,
  type AccessLogSink,
} from '../stages/index.js'

export interface InboundHandlerOptions {
  readonly ownId: string
  readonly pathNormalization: PathNormalization
  readonly mtlsMode: MtlsMode
  readonly policy: WorkloadPolicy
  readonly app: RouteTarget
  /** The app's port: PeerAuthentication portLevelMtls and AuthorizationPolicy ports match on it. */
  readonly appPort: number
  readonly accessLog: AccessLogSink
  readonly onInternalError: (err: unknown) => void
  readonly onDecision?: (ctx: RequestContext) => void
}

// Built once per config snapshot. Outer → inner (DESIGN.md §2):
//   accessLog    outermost: one line per request, denials included
//   rescue       the one place errors become responses (403/401/404/503/504…)
//   sanitize     header hygiene + path normalization, before anything looks at the request
//   authnMtls    per-request re-check of the PeerAuthentication mode
//   authz        AuthorizationPolicy; a DENY never reaches the app
//   route        the local app
//   upstream     terminal: stream to the app through a keep-alive pool
// (trace and metrics join between accessLog and rescue; authnJwt between authnMtls and authz.)
export function buildInboundHandler(o: InboundHandlerOptions): Handler {
  return compose(
    [
      createAccessLogStage(o.accessLog),
      createRescueStage({ onInternalError: o.onInternalError }),
      createSanitizeStage({ direction: 'inbound', pathNormalization: o.pathNormalization, ownId: o.ownId }),
      createAuthnMtlsStage(o.mtlsMode),
      createAuthzStage({ policy: o.policy, onDecision: o.onDecision, destinationPort: o.appPort }),
      createInboundRouteStage(o.app),
    ],
    createUpstreamHandler(),
  )
}
