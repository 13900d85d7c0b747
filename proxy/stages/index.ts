// The pipeline stages, one file each, in the order DESIGN.md §2 draws them. A stage is a factory
// that validates its options when built and returns `(next) => handler`.
export { createAccessLogStage, toAccessLogEntry, type AccessLogEntry, type AccessLogSink } from './access-log.js'
export { createRescueStage } from './rescue.js'
export { createSanitizeStage } from './sanitize.js'
export { createAuthnMtlsStage } from './authn-mtls.js'
export { createAuthnJwtStage, type AuthnJwtStageOptions } from './authn-jwt.js'
export { createAuthzStage, requestFacts } from './authz.js'
export { createInboundRouteStage, createOutboundRouteStage, type DestinationRoutes, type RoutedCluster, type RouteTable } from './route.js'
export { createTraceStage, type TraceStageOptions } from './trace.js'
export { createQuarantineStage, NO_QUARANTINE, type QuarantineSet } from './quarantine.js'
export { createMetricsStage, UNKNOWN_WORKLOAD, type MetricsStageOptions, type WorkloadLabels } from './metrics.js'
