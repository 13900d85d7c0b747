import { mtlsModeFor, type MtlsMode, type PathNormalization, type WorkloadPolicy } from '../policy/index.js'
import type { JwtAuthenticator, JwtOutcome } from '../authn/index.js'
import { compose, type Handler, type RequestContext, type RouteTarget } from '../pipeline/index.js'
import type { SidecarMetrics, Tracing } from '../telemetry/index.js'
import {
  createAccessLogStage,
  createAuthnJwtStage,
  createAuthnMtlsStage,
  createAuthzStage,
  createInboundRouteStage,
  createMetricsStage,
  createRescueStage,
  createSanitizeStage,
  createTraceStage,
  createQuarantineStage,
  NO_QUARANTINE,
  type QuarantineSet,
  type AccessLogSink,
  type WorkloadLabels,
} from '../stages/index.js'

export interface InboundHandlerOptions {
  readonly ownId: string
  readonly pathNormalization: PathNormalization
  readonly mtlsMode: MtlsMode
  readonly policy: WorkloadPolicy
  readonly app: RouteTarget
  /** The app's port: PeerAuthentication portLevelMtls and AuthorizationPolicy ports match on it. */
  readonly appPort: number
  /** The app on another port (multi-port workloads: the port a caller asked for). */
  readonly appOnPort?: (port: number, host: string) => RouteTarget
  readonly accessLog: AccessLogSink
  readonly onInternalError: (err: unknown) => void
  /** The tracer (null: tracing off, no trace stage) and the metric registry with this workload's labels. */
  readonly tracing: Tracing | null
  readonly metrics: SidecarMetrics
  readonly self: WorkloadLabels
  /** The terminal handler of the forwarding engine (Engine.createUpstream). */
  readonly upstream: Handler
  /** The workload's RequestAuthentication, compiled for this snapshot; null/absent: no JWT stage. */
  readonly jwt?: JwtAuthenticator | null
  readonly onJwtResult?: (ctx: RequestContext, outcome: JwtOutcome) => void
  readonly onDecision?: (ctx: RequestContext) => void
  /** Quarantined identities of this snapshot (checked before authentication and authorization). */
  readonly quarantine?: QuarantineSet
}

// Built once per config snapshot. Outer → inner (DESIGN.md §2):
//   accessLog    outermost: one line per request, denials included
//   trace        server span (context extracted, this span injected toward the app); sees denials
//   metrics      Istio's request metrics and authz decisions, with the final status and flags
//   rescue       the one place errors become responses (403/401/404/503/504…)
//   sanitize     header hygiene + path normalization, before anything looks at the request
//   authnMtls    per-request re-check of the PeerAuthentication mode
//   authnJwt     RequestAuthentication: a bad token → 401 (JW); no token passes and authz decides
//   authz        AuthorizationPolicy; a DENY never reaches the app
//   route        the local app
//   upstream     terminal: stream to the app through a keep-alive pool
export function buildInboundHandler(o: InboundHandlerOptions): Handler {
  return compose(
    [
      createAccessLogStage(o.accessLog),
      ...(o.tracing ? [createTraceStage({ tracing: o.tracing, direction: 'inbound', jaegerUi: o.tracing.settings.jaegerUi })] : []),
      createMetricsStage({ metrics: o.metrics, direction: 'inbound', self: o.self }),
      createRescueStage({ onInternalError: o.onInternalError }),
      createSanitizeStage({ direction: 'inbound', pathNormalization: o.pathNormalization, ownId: o.ownId }),
      createQuarantineStage(o.quarantine ?? NO_QUARANTINE, 'inbound'),
      createAuthnMtlsStage(o.mtlsMode, (port) => mtlsModeFor(o.policy, port), o.policy.peerAuthn.portLevel.size > 0),
      createAuthnJwtStage({ authenticator: o.jwt ?? null, onResult: o.onJwtResult }),
      createAuthzStage({ policy: o.policy, onDecision: o.onDecision, destinationPort: o.appPort }),
      createInboundRouteStage(o.app, o.appOnPort),
    ],
    o.upstream,
  )
}
