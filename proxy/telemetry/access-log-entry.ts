// One access-log line as data (Envoy's fields): the access-log stage fills it after the response,
// the writer formats it. It lives with telemetry, which formats it, so telemetry never looks up at the stages.
export interface AccessLogEntry {
  start_time: string
  direction: 'inbound' | 'outbound'
  method: string
  authority: string
  path: string
  protocol: string
  response_code: number
  response_flags: string
  error_code: string | null
  duration_ms: number
  upstream_service_time_ms: number | null
  bytes_received: number
  bytes_sent: number
  upstream_cluster: string | null
  upstream_host: string | null
  downstream_remote_address: string
  downstream_peer_principal: string | null
  connection_security_policy: string
  request_id: string
  authz_decision: string | null
  authz_policy: string | null
  authz_reason: string | null
  /** The index of the rule that decided (the traffic record keeps it); absent for a default decision. */
  authz_rule?: number
  /** Inbound: the workload port the caller asked for (SNI or redirect), when it is known; else the app's port. */
  destination_port?: number
  /** A gRPC call's grpc-status (null when none arrived); absent for anything else. */
  grpc_status?: number | null
  /** `iss/sub` of a verified JWT (never the token). */
  request_principal?: string
  /** This sidecar's span (hex ids); null when tracing is off. */
  trace_id: string | null
  span_id: string | null
  /** The Jaeger UI link, on denied and failed requests whose span was sampled (`--jaeger-ui`). */
  trace_link?: string
  /** TLS SNI of a connection (passthrough or mesh TCP), Envoy's requested_server_name. */
  requested_server_name?: string
  /** The key-exchange group of the mesh mTLS connection this line is for (TCP lines, outbound). */
  tls_group?: string
  detail?: string
}

export type AccessLogSink = (entry: AccessLogEntry) => void
