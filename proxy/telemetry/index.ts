// Telemetry (owns tracer setup and span export, the metric registry, access log formats and the :15090 listener); imports only types from stages, never listeners.
export { resolveTracingSettings, pickOtelEnv, otlpHttpTracesUrl, OTEL_ENV_NAMES, type OtelEnv, type TracingSettings, type PropagatorName, type TraceExporterKind } from './settings.js'
export { createTracing, createPropagator, createSampler, BoundedBatchSpanProcessor, REMORA_VERSION, type Tracing, type TracingHooks, type TracingResource, type SpanDropReason } from './tracing.js'
export { SidecarMetrics, CounterFamily, HistogramFamily, HistogramChild, RequestChild, ISTIO_LABELS, ISTIO_DURATION_BUCKETS, ISTIO_BYTES_BUCKETS, type MetricsSources } from './metrics.js'
export { createAccessLogWriter, accessLogFormatter, formatAccessLogJson, formatAccessLogText, type AccessLogFormat } from './access-log.js'
export { createMetricsListener } from './metrics-listener.js'
