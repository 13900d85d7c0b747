import { z } from 'zod'
import { PATH_NORMALIZATIONS } from '../policy/path.js'
import { ClusterSchema, OutboundTrafficPolicySchema, durationSchema, formatPath, hostPortSchema, parseDuration, type ClusterConfig } from '../snapshot/index.js'

// The cluster schema and the duration/host:port parsers are the snapshot contract's (one schema for
// sidecar.yaml and the wire); re-exported here for the config's users.
export { ClusterSchema, formatPath, parseDuration, type ClusterConfig }
export { parseHostPort } from '../snapshot/index.js'

// SidecarConfig: the one schema every source (file, flags, control plane) passes through.
// Strict objects everywhere: an unknown field is an error, never ignored.

const duration = durationSchema
const hostPort = hostPortSchema
const port = z.number({ message: 'expected a port number' }).int('expected an integer port').min(0, 'expected a port 0-65535').max(65535, 'expected a port 0-65535')
const dns1123 = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
const name = z.string().regex(dns1123, 'expected a DNS-1123 label (lower-case letters, digits, "-")')
const spiffeIdish = z.string().regex(/^spiffe:\/\/[a-z0-9._-]+\/\S+$/, 'expected a SPIFFE ID (spiffe://<trust-domain>/<path>)')

export const TRACE_EXPORTERS = ['otlp', 'otlp-grpc', 'jaeger', 'none'] as const
export const TRACE_PROPAGATORS = ['tracecontext', 'baggage', 'b3', 'b3multi', 'jaeger'] as const
export const ACCESS_LOG_FORMATS = ['json', 'text'] as const
// No user:password@ in the URL: it would show in /config_dump and logs. Collector credentials go in
// OTEL_EXPORTER_OTLP_HEADERS, which the exporter reads and nothing logs.
const httpUrl = z
  .string()
  .regex(/^https?:\/\/[^\s/?#]+(\/[^\s]*)?$/, 'expected an http:// or https:// URL')
  .refine((v) => !/^https?:\/\/[^/?#]*@/.test(v), { message: 'credentials in the URL are not allowed (use OTEL_EXPORTER_OTLP_HEADERS)' })

// Tracing fields left unset fall back to the OTEL_* environment variables, then to the defaults
// (proxy/telemetry/settings.ts): a value in sidecar.yaml or a flag always wins over the variable.
export const TelemetrySchema = z.strictObject({
  tracing: z
    .strictObject({
      /** otlp = OTLP http/protobuf (Jaeger's :4318); none = off. Unset and no endpoint anywhere: off. */
      exporter: z.enum(TRACE_EXPORTERS).optional(),
      endpoint: httpUrl.optional(),
      /** Ratio of new traces sampled; a caller's sampled flag is always honoured (parent-based). */
      sampling: z.number().min(0, 'expected a ratio 0..1').max(1, 'expected a ratio 0..1').optional(),
      propagators: z.array(z.enum(TRACE_PROPAGATORS)).min(1, 'expected at least one propagator').optional(),
      /** Jaeger UI base URL: denied/failed responses to mesh peers carry x-remora-trace: <url>/trace/<id>. */
      jaegerUi: httpUrl.optional(),
      /** Finished spans waiting for export; beyond this they are dropped (and counted), never waited for. */
      maxQueueSize: z.number().int().min(1).max(1_000_000).default(2048),
    })
    .default({ maxQueueSize: 2048 }),
  metrics: z
    .strictObject({
      /** Prometheus scrape listener (/stats/prometheus, Istio's 15090); 0 = any free port. */
      port: port.default(15090),
      bind: z.string().default('0.0.0.0'),
    })
    .default({ port: 15090, bind: '0.0.0.0' }),
  /**
   * The traffic record (docs/observability.md#traffic-record): edges this sidecar served, reported to
   * the control plane every interval. enabled unset: on when controlPlane is set (without one, true
   * only records: benchmarks measure its cost that way).
   */
  trafficReport: z
    .strictObject({
      enabled: z.boolean().optional(),
      interval: boundedDuration(100, 3_600_000, 'expected a duration from 100ms to 1h, like 10s').default('10s'),
    })
    .default({ interval: '10s' }),
})

/** A duration string within [minMs, maxMs]; `message` states the bounds and is the error for anything else. */
function boundedDuration(minMs: number, maxMs: number, message: string) {
  return z.string({ message }).refine((v) => {
    const ms = parseDuration(v)
    return ms !== null && ms >= minMs && ms <= maxMs
  }, { message })
}

export const MAX_JWT_LEEWAY_SECONDS = 300
export const MAX_JWT_CACHE_SIZE = 1_000_000

// A leeway is clock skew forgiven on exp and nbf: whole seconds (JWT times are seconds), at most 5
// minutes, since every second of it is a second an expired or stolen token is still accepted.
const jwtLeeway = z.string({ message: 'expected a duration in whole seconds, 0s..300s, like 60s' }).superRefine((v, ctx) => {
  const ms = parseDuration(v)
  if (ms === null) ctx.addIssue({ code: 'custom', message: 'expected a duration in whole seconds, 0s..300s, like 60s' })
  else if (ms > MAX_JWT_LEEWAY_SECONDS * 1000) ctx.addIssue({ code: 'custom', message: `at most ${MAX_JWT_LEEWAY_SECONDS}s: a larger leeway keeps accepting expired tokens (Istio and Envoy use 60s)` })
  else if (ms % 1000 !== 0) ctx.addIssue({ code: 'custom', message: 'expected whole seconds (JWT exp and nbf are in seconds), like 60s' })
})

// Defaults are those of proxy/authn (DEFAULT_LEEWAY_SECONDS, DEFAULT_TOKEN_CACHE_SIZE,
// DEFAULT_JWKS_REFRESH_MS, DEFAULT_JWKS_COOLDOWN_MS); test/unit/config/jwt-settings.test.ts keeps them equal.
export const JWT_SETTINGS_DEFAULTS = { leeway: '60s', cacheSize: 4096, jwksRefresh: '10m', jwksCooldown: '30s' } as const

export const JwtSettingsSchema = z.strictObject({
  /** Clock skew allowed on exp and nbf (Envoy's clock_skew_seconds). */
  leeway: jwtLeeway.default(JWT_SETTINGS_DEFAULTS.leeway),
  /** Verified tokens kept per snapshot (LRU, keyed by the token's SHA-256); 0 = off. */
  cacheSize: z
    .number({ message: `expected a number of entries 0..${MAX_JWT_CACHE_SIZE} (0 = off)` })
    .int(`expected a whole number of entries 0..${MAX_JWT_CACHE_SIZE} (0 = off)`)
    .min(0, `expected a number of entries 0..${MAX_JWT_CACHE_SIZE} (0 = off)`)
    .max(MAX_JWT_CACHE_SIZE, `expected a number of entries 0..${MAX_JWT_CACHE_SIZE} (0 = off)`)
    .default(JWT_SETTINGS_DEFAULTS.cacheSize),
  /** How often a jwksUri is refetched while things are fine. */
  jwksRefresh: boundedDuration(10_000, 86_400_000, 'expected a duration 10s..24h, like 10m').default(JWT_SETTINGS_DEFAULTS.jwksRefresh),
  /** At most one refetch per cooldown on an unknown kid or a failure (the issuer is not hammered). */
  jwksCooldown: boundedDuration(1_000, 3_600_000, 'expected a duration 1s..1h, like 30s').default(JWT_SETTINGS_DEFAULTS.jwksCooldown),
})

// Downstream limits of both fronts (docs/forwarding.md#limits). Envoy's names and, where Envoy has
// one, its default; the request head timeout is Envoy's request_headers_timeout, which Envoy leaves
// off: remora bounds it (10 s) because a sidecar's callers write a head in one go, and a head that
// trickles for longer is holding a connection, not sending a request (slowloris).
export const LIMITS_DEFAULTS = { requestHeadersTimeout: '10s', idleTimeout: '60s', streamIdleTimeout: '5m', maxRequestHeadersCount: 100, maxRequestHeadersKb: 60 } as const
const count = (min: number, max: number, what: string) =>
  z.number({ message: `expected ${what} ${min}..${max}` }).int(`expected a whole number of ${what} ${min}..${max}`).min(min, `expected ${what} ${min}..${max}`).max(max, `expected ${what} ${min}..${max}`)

export const LimitsSchema = z.strictObject({
  /** A request head must be complete this long after its first byte (a new connection: after accept); else 408. */
  requestHeadersTimeout: boundedDuration(100, 3_600_000, 'expected a duration 100ms..1h, like 10s').default(LIMITS_DEFAULTS.requestHeadersTimeout),
  /** A keep-alive connection with no request in flight and none started is closed (no answer) after this. */
  idleTimeout: boundedDuration(100, 86_400_000, 'expected a duration 100ms..24h, like 60s').default(LIMITS_DEFAULTS.idleTimeout),
  /** No byte in either direction while a request is in flight (Envoy's stream_idle_timeout): closed. */
  streamIdleTimeout: boundedDuration(1_000, 86_400_000, 'expected a duration 1s..24h, like 5m').default(LIMITS_DEFAULTS.streamIdleTimeout),
  /** Header lines per request (Envoy's max_request_headers_count); more is a 431. */
  maxRequestHeadersCount: count(1, 8192, 'headers').default(LIMITS_DEFAULTS.maxRequestHeadersCount),
  /** Request line and headers together, in KiB (Envoy's max_request_headers_kb); more is a 431. */
  maxRequestHeadersKb: count(1, 8192, 'KiB').default(LIMITS_DEFAULTS.maxRequestHeadersKb),
})

/**
 * Header lines the inbound front accepts beyond maxRequestHeadersCount: those the calling sidecar
 * adds (x-request-id, x-forwarded-proto, traceparent/tracestate, b3, uber-trace-id, baggage), so a
 * request the caller's own sidecar accepted is not refused one hop later by the peer's.
 */
export const INBOUND_HEADERS_ALLOWANCE = 16

/** The limits as a front takes them (milliseconds, bytes). */
export function frontLimits(l: z.output<typeof LimitsSchema>, direction: 'inbound' | 'outbound' = 'outbound'): { requestHeadersTimeoutMs: number; idleTimeoutMs: number; streamIdleTimeoutMs: number; maxRequestHeadersCount: number; maxRequestHeadersBytes: number } {
  return {
    requestHeadersTimeoutMs: parseDuration(l.requestHeadersTimeout)!,
    idleTimeoutMs: parseDuration(l.idleTimeout)!,
    streamIdleTimeoutMs: parseDuration(l.streamIdleTimeout)!,
    maxRequestHeadersCount: l.maxRequestHeadersCount + (direction === 'inbound' ? INBOUND_HEADERS_ALLOWANCE : 0),
    maxRequestHeadersBytes: l.maxRequestHeadersKb * 1024,
  }
}

export const ENGINES = ['raw', 'node-http'] as const

export const SidecarConfigSchema = z.strictObject({
  apiVersion: z.literal('remora.dev/v1', { message: 'expected "remora.dev/v1"' }),
  kind: z.literal('SidecarConfig', { message: 'expected "SidecarConfig"' }),
  trustDomain: z.string().regex(/^[a-z0-9._-]+$/, 'expected a trust domain like cluster.local').default('cluster.local'),
  workload: z.strictObject({
    namespace: name,
    serviceAccount: name,
    name: name.optional(),
    labels: z.record(z.string(), z.string()).default({}),
  }),
  // Static identity from files, or none of it with controlPlane (the control plane issues it).
  identity: z
    .strictObject({
      certFile: z.string().min(1),
      keyFile: z.string().min(1),
      caFile: z.string().min(1),
    })
    .optional(),
  controlPlane: z
    .strictObject({
      /** host:port of every replica; the sidecar fails over between them. */
      addresses: z.array(hostPort).min(1, 'expected at least one control-plane address'),
      /** The control plane's CA bundle (PEM): bootstrap is server-authenticated against it. */
      caFile: z.string().min(1),
      /** The control plane's SPIFFE ID (default spiffe://<trustDomain>/ns/<rootNamespace>/sa/remora-control-plane). */
      identity: spiffeIdish.optional(),
      /** A file holding the join token; else the environment variable tokenEnv. Read once, never logged. */
      tokenFile: z.string().min(1).optional(),
      tokenEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'expected an environment variable name').default('REMORA_JOIN_TOKEN'),
      /** Last good snapshot, certificate and key (0600): the sidecar restarts on them when the control plane is down. */
      stateDir: z.string().min(1),
      /** The service name other sidecars route to (<service>.<namespace>); default workload.name or serviceAccount. */
      service: name.optional(),
      /** The inbound address other sidecars dial (default inbound bind:port, 127.0.0.1 for a wildcard bind). */
      advertise: hostPort.optional(),
      reconnect: z
        .strictObject({ initial: duration.default('200ms'), max: duration.default('5s') })
        .default({ initial: '200ms', max: '5s' }),
    })
    .optional(),
  inbound: z.strictObject({
    port: port.default(15006),
    bind: z.string().default('0.0.0.0'),
    /** The app's port on loopback. Absent for a workload that serves nothing (a Job): every inbound connection is refused. */
    app: hostPort.optional(),
    timeout: duration.optional(),
  }).default({ port: 15006, bind: '0.0.0.0' }),
  outbound: z
    .strictObject({
      port: port.default(15001),
      bind: z.string().default('127.0.0.1'),
      /** This sidecar's outbound traffic policy; absent: the control plane's (mesh-wide), else ALLOW_ANY. */
      trafficPolicy: OutboundTrafficPolicySchema.optional(),
      /** How long a redirected client may stay silent before its connection is treated as TCP (server-first). */
      protocolDetectionTimeout: duration.default('1s'),
      /**
       * Local bind ports for one cluster each (Consul's "upstreams"): a workload without
       * interception reaches a TCP or TLS service at bind:port, carried over the mesh.
       */
      listeners: z
        .array(
          z.strictObject({
            port,
            bind: z.string().default('127.0.0.1'),
            cluster: z.string().min(1),
            /** The destination service port (default: the cluster's only declared port, else the workload's default port). */
            servicePort: port.optional(),
            /** Or the workload port itself, for a cluster without declared ports (one registered by a sidecar). */
            targetPort: port.optional(),
          })
          .refine((l) => l.servicePort === undefined || l.targetPort === undefined, { message: 'set servicePort or targetPort, not both' }),
        )
        .default([]),
    })
    .default({ port: 15001, bind: '127.0.0.1', protocolDetectionTimeout: '1s', listeners: [] }),
  admin: z
    .strictObject({
      port: port.default(15000),
      bind: z.string().default('127.0.0.1'),
    })
    .default({ port: 15000, bind: '127.0.0.1' }),
  clusters: z.array(ClusterSchema).default([]),
  policies: z
    .strictObject({
      files: z.array(z.string().min(1)).default([]),
      rootNamespace: name.default('remora-system'),
    })
    .default({ files: [], rootNamespace: 'remora-system' }),
  pathNormalization: z.enum(PATH_NORMALIZATIONS as [string, ...string[]]).default('MERGE_SLASHES'),
  /** Forwarding engine: raw (raw sockets, llhttp framing only; the default) or node-http (node:http + undici pools, the fallback). */
  engine: z.enum(ENGINES).default('raw'),
  accessLog: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Unset: stdout. Otherwise a file, appended to. */
      path: z.string().optional(),
      /** json: one JSON object per line (default); text: Envoy's default format line. */
      format: z.enum(ACCESS_LOG_FORMATS).default('json'),
    })
    .default({ enabled: true, format: 'json' }),
  telemetry: TelemetrySchema.default({ tracing: { maxQueueSize: 2048 }, metrics: { port: 15090, bind: '0.0.0.0' }, trafficReport: { interval: '10s' } }),
  /** JWT authentication (RequestAuthentication): leeway, verified-token cache, JWKS refresh (docs/jwt.md). */
  jwt: JwtSettingsSchema.default({ ...JWT_SETTINGS_DEFAULTS }),
  /** Downstream limits of both fronts: head timeout, idle timeouts, header count and size (docs/forwarding.md#limits). */
  limits: LimitsSchema.default({ ...LIMITS_DEFAULTS }),
})

export type SidecarConfigInput = z.input<typeof SidecarConfigSchema>
export type SidecarConfig = z.output<typeof SidecarConfigSchema>

export interface ConfigIssue {
  path: string
  message: string
}

export function validateSidecarConfig(input: unknown): { ok: true; config: SidecarConfig } | { ok: false; issues: ConfigIssue[] } {
  const r = SidecarConfigSchema.safeParse(input, { reportInput: true })
  if (r.success) {
    const issues: ConfigIssue[] = []
    const d = r.data
    if (!d.identity && !d.controlPlane) issues.push({ path: 'identity', message: 'required field is missing (or configure controlPlane to get the identity from the control plane)' })
    if (d.identity && d.controlPlane) issues.push({ path: 'controlPlane', message: 'identity comes from the control plane: remove identity, or remove controlPlane' })
    if (d.controlPlane && d.clusters.length) issues.push({ path: 'clusters', message: 'clusters come from the control plane when controlPlane is set' })
    if (d.controlPlane && d.policies.files.length) issues.push({ path: 'policies.files', message: 'policies come from the control plane when controlPlane is set' })
    const seen = new Map<string, string>()
    r.data.clusters.forEach((c, i) => {
      for (const [j, h] of c.hosts.entries()) {
        const key = h.toLowerCase()
        const prev = seen.get(key)
        if (prev) issues.push({ path: `clusters[${i}].hosts[${j}]`, message: `host "${h}" is already routed to cluster ${prev}` })
        else seen.set(key, c.name)
      }
    })
    return issues.length ? { ok: false, issues } : { ok: true, config: r.data }
  }
  const issues: ConfigIssue[] = []
  for (const iss of r.error.issues) {
    if (iss.code === 'unrecognized_keys') {
      for (const k of iss.keys) issues.push({ path: formatPath([...iss.path, k]), message: 'unknown field' })
    } else if (iss.code === 'invalid_type' && iss.input === undefined) {
      issues.push({ path: formatPath(iss.path), message: 'required field is missing' })
    } else {
      issues.push({ path: formatPath(iss.path), message: iss.message })
    }
  }
  return { ok: false, issues }
}
