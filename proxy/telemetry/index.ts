// Telemetry (owns tracer setup and span export, the metric registry, the access-log entry and its
// formats, the :15090 listener, the facts of a gRPC call). Never imports stages, config or listeners: they build on it.
export { resolveTracingSettings, pickOtelEnv, otlpHttpTracesUrl, OTEL_ENV_NAMES, type OtelEnv, type TracingSettings, type PropagatorName, type TraceExporterKind } from './settings.js'
export { createTracing, REMORA_VERSION, type Tracing, type TracingHooks, type TracingResource, type SpanDropReason } from './tracing.js'
export { SidecarMetrics, CounterFamily, HistogramFamily, HistogramChild, RequestChild, ISTIO_LABELS, ISTIO_MESSAGE_LABELS, ISTIO_DURATION_BUCKETS, ISTIO_BYTES_BUCKETS, type MessageChildren, type MetricsSources } from './metrics.js'
export { GRPC_STATUS, grpcFacts, grpcStatusLabel, httpToGrpcStatus, isGrpcContentType, startGrpcCall, type GrpcFacts } from './grpc.js'
export { createAccessLogWriter, accessLogFormatter, formatAccessLogJson, formatAccessLogText, type AccessLogFormat, type AccessLogSettings } from './access-log.js'
export type { AccessLogEntry, AccessLogSink } from './access-log-entry.js'
export { createMetricsListener } from './metrics-listener.js'
