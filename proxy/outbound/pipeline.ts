import type { PathNormalization } from '../policy/index.js'
import { compose, type Handler } from '../pipeline/index.js'
import type { SidecarMetrics, Tracing } from '../telemetry/index.js'
import {
  createAccessLogStage,
  createMetricsStage,
  createOutboundRouteStage,
  createRescueStage,
  createSanitizeStage,
  createTraceStage,
  createQuarantineStage,
  NO_QUARANTINE,
  type QuarantineSet,
  type AccessLogSink,
  type DestinationRoutes,
  type RouteTable,
  type WorkloadLabels,
} from '../stages/index.js'

export interface OutboundHandlerOptions {
  readonly pathNormalization: PathNormalization
  readonly routes: RouteTable
  /** Routing by original destination and the outbound traffic policy. */
  readonly destinations?: DestinationRoutes
  readonly accessLog: AccessLogSink
  readonly onInternalError: (err: unknown) => void
  /** The tracer (null: tracing off, no trace stage) and the metric registry with this workload's labels. */
  readonly tracing: Tracing | null
  readonly metrics: SidecarMetrics
  readonly self: WorkloadLabels
  /** Per cluster, computed when the config is compiled: its destination labels and, when it has exactly one, its identity. */
  readonly clusterLabels: ReadonlyMap<string, WorkloadLabels>
  readonly clusterPrincipals: ReadonlyMap<string, string>
  readonly clusterIdentities?: ReadonlyMap<string, readonly string[]>
  /** The terminal handler of the forwarding engine (Engine.createUpstream). */
  readonly upstream: Handler
  /** Quarantined identities of this snapshot: checked after the route (it knows the destination). */
  readonly quarantine?: QuarantineSet
}

// Built once per config snapshot. Outer → inner (DESIGN.md §2):
//   accessLog    outermost: one line per request, NR and UF included
//   trace        client span, injected upstream (traceparent / b3 / uber-trace-id)
//   metrics      Istio's request metrics, reporter=source, destination labels from the cluster
//   rescue       the one place errors become responses
//   sanitize     header hygiene + path normalization
//   route        Host → cluster → endpoint (404 NR when none; 503 NC before the first snapshot)
//   upstream     terminal: mTLS to the endpoint with secure naming
export function buildOutboundHandler(o: OutboundHandlerOptions): Handler {
  return compose(
    [
      createAccessLogStage(o.accessLog),
      ...(o.tracing ? [createTraceStage({ tracing: o.tracing, direction: 'outbound', jaegerUi: o.tracing.settings.jaegerUi, clusterPrincipals: o.clusterPrincipals })] : []),
      createMetricsStage({ metrics: o.metrics, direction: 'outbound', self: o.self, clusters: o.clusterLabels }),
      createRescueStage({ onInternalError: o.onInternalError }),
      createSanitizeStage({ direction: 'outbound', pathNormalization: o.pathNormalization }),
      createOutboundRouteStage(o.routes, o.destinations),
      createQuarantineStage(o.quarantine ?? NO_QUARANTINE, 'outbound', o.clusterIdentities),
    ],
    o.upstream,
  )
}
