import { createHash } from 'node:crypto'
import { createJwtAuthenticator, type JwksRegistry, type JwtOutcome } from '../authn/index.js'
import { parseDuration, type ClusterConfig, type SidecarConfig } from '../config/schema.js'
import { buildInboundHandler } from '../inbound/index.js'
import { buildOutboundHandler } from '../outbound/index.js'
import { proxyError, type Handler, type RequestContext, type RouteTarget } from '../pipeline/index.js'
import { compile, compileRequestAuthn, jwtRulesForWorkload, mtlsModeFor, selectForWorkload, type CompiledJwtRule, type MtlsMode, type PathNormalization, type PolicyDocument, type WorkloadPolicy } from '../policy/index.js'
import { NO_QUARANTINE, type AccessLogSink, type QuarantineSet, type RoutedCluster, type WorkloadLabels } from '../stages/index.js'
import type { SidecarMetrics, Tracing } from '../telemetry/index.js'
import type { EnginePools } from '../engines/index.js'
import { logInternalError, type Clock, type Logger } from '../deps.js'
import { portOf } from '../engines/common/index.js'
import { DEFAULT_OUTBOUND_POLICY, buildL4Table, type HostAddresses, canonicalIp, externalAllowed, meshServername, type L4Table, type OutboundPolicy } from '../l4/index.js'
import type { OutboundTrafficPolicy, QuarantineEntry } from '../snapshot/index.js'
import type { EffectiveJwtSettings } from './jwt-settings.js'
import { clusterLabels, selfLabels } from './labels.js'

/** Everything a request needs, compiled once per config/policy version and swapped atomically. */
export interface RuntimeState {
  /** False until the first config: the static path starts configured, a control-plane sidecar does not. */
  readonly configured: boolean
  readonly version: string
  readonly appliedAt: string
  readonly policies: readonly PolicyDocument[]
  readonly workloadPolicy: WorkloadPolicy
  readonly mtlsMode: MtlsMode
  readonly inbound: Handler
  readonly outbound: Handler
  readonly clusters: readonly RoutedCluster[]
  /** The same clusters per declared service port (their SNI names the workload port). */
  readonly portClusters: readonly RoutedCluster[]
  readonly jwtRules: readonly CompiledJwtRule[]
  readonly clusterConfigs: readonly ClusterConfig[]
  /** The local app's target (its pool is kept across swaps). */
  readonly app: RouteTarget
  /** The workload on another port (a multi-port pod), at the address the caller reached it on; made once per address and port. */
  readonly appOnPort: (port: number, host: string) => RouteTarget
  /** Connection-level routing (original destination, SNI) and the outbound traffic policy in force. */
  readonly l4: L4Table
  readonly outboundPolicy: OutboundPolicy
  /** The control plane's mesh-wide policy as received (kept across policy-only swaps). */
  readonly meshOutboundPolicy: OutboundTrafficPolicy | null
  /** Quarantined identities in force, as received and compiled. */
  readonly quarantineEntries: readonly QuarantineEntry[]
  readonly quarantine: QuarantineSet
}

/** What the compiler builds with: fixed for the sidecar's life (pools and JWKS sources are shared across versions). */
export interface CompileEnv {
  readonly config: SidecarConfig
  readonly selfId: string
  readonly pools: EnginePools
  readonly jwks: JwksRegistry
  readonly jwtSettings: EffectiveJwtSettings
  /** Called for every JWT outcome after it is counted (a test or metric hook). */
  readonly onJwtResult?: (outcome: JwtOutcome) => void
  readonly metrics: SidecarMetrics
  readonly tracing: Tracing | null
  readonly accessLog: AccessLogSink
  /** The forwarding engine's terminal handler. */
  readonly upstream: Handler
  readonly clock: Clock
  readonly logger: Logger
  /** Resolves allowed external hosts under REGISTRY_ONLY. */
  readonly hosts: HostAddresses
  /** An HTTP request refused by REGISTRY_ONLY (counted by the sidecar). */
  readonly onOutboundRefused?: (kind: 'http') => void
}

/** One config version's input: the policies, the outbound clusters, and whether it is a real config yet. */
export interface CompileInput {
  readonly policies: readonly PolicyDocument[]
  readonly clusters: readonly ClusterConfig[]
  readonly configured: boolean
  /** The control plane's version; absent: a hash of the content (static and file-reload configs). */
  readonly version?: string
  /** The control plane's mesh-wide outbound traffic policy (the sidecar's own wins). */
  readonly outboundTrafficPolicy?: OutboundTrafficPolicy
  /** Quarantined identities (the control plane's snapshot). */
  readonly quarantine?: readonly QuarantineEntry[]
}

const DEFAULT_TIMEOUT_MS = 15_000
/** Routed clusters made on demand for a (cluster, workload port) per snapshot, at most. */
const MAX_NAMED_PORTS = 4096
const DEFAULT_CONNECT_TIMEOUT_MS = 5_000
const IDLE_TIMEOUT_MS = 300_000
/** The inbound target of a workload without inbound.app (a Job): port 0, never dialled (the listener refuses first). */
const NO_INBOUND_APP = '127.0.0.1:0'

/**
 * Before the first snapshot every outbound lookup fails closed with 503 NC. It throws inside the
 * route stage, so the outer stages (access log, metrics, rescue) still see and answer the request.
 */
class NoConfigRoutes extends Map<string, RoutedCluster> {
  override get(): never {
    throw proxyError('REMORA_ERR_NO_CONFIG', 'waiting for the first snapshot from the control plane')
  }
}

/** The local app as a route target (its plain pool comes from the registry, so it is the same one every version). */
export function appTarget(env: Pick<CompileEnv, 'config' | 'pools'>): RouteTarget {
  const c = env.config
  // Without inbound.app the listener refuses every connection: this placeholder is never dialled.
  const app = c.inbound.app ?? NO_INBOUND_APP
  return {
    cluster: `inbound|${portOf(app)}||`,
    address: app,
    dispatcher: env.pools.plain(app, DEFAULT_CONNECT_TIMEOUT_MS),
    timeoutMs: c.inbound.timeout ? parseDuration(c.inbound.timeout)! : DEFAULT_TIMEOUT_MS,
    idleTimeoutMs: IDLE_TIMEOUT_MS,
    identities: null,
    servername: null,
    connectTimeoutMs: DEFAULT_CONNECT_TIMEOUT_MS,
  }
}

/**
 * The snapshot compiler: policies and clusters → the state every request runs on. Everything a
 * request would otherwise look up (the workload's policies, mTLS mode, JWT rules, routes, pools,
 * metric labels, both chains) is decided here, once per version. Throws when the input cannot be
 * compiled; the caller keeps the old state (and NACKs).
 */
export function compileRuntime(input: CompileInput, env: CompileEnv): RuntimeState {
  const c = env.config
  const workload = { namespace: c.workload.namespace, labels: c.workload.labels }
  const wp = selectForWorkload(compile(input.policies, { rootNamespace: c.policies.rootNamespace }), workload)
  const app = appTarget(env)
  const appPort = portOf(app.address)
  const mtlsMode = mtlsModeFor(wp, appPort)
  const jwtRules = jwtRulesForWorkload(compileRequestAuthn(input.policies, { rootNamespace: c.policies.rootNamespace }), workload).rules
  const jwt =
    jwtRules.length === 0
      ? null
      : createJwtAuthenticator(
          jwtRules,
          { leewaySeconds: env.jwtSettings.leewaySeconds, cacheSize: env.jwtSettings.cacheSize, sourceFor: (r) => env.jwks.sourceFor(r) },
          { clock: env.clock, logger: env.logger },
        )
  // Every JWT outcome is counted (remora_jwt_validations_total{result}: ok, missing or the error code).
  const onJwtResult = (_ctx: unknown, o: JwtOutcome): void => {
    env.metrics.jwtResult(o.result === 'invalid' ? o.code : o.result)
    env.onJwtResult?.(o)
  }
  // One routed cluster per (cluster, workload port): the port travels in the SNI, so each port has
  // its own pools. `null` is the workload's default port (a cluster without declared ports).
  const routedFor = (cl: ClusterConfig, targetPort: number | null): RoutedCluster => ({
    name: cl.name,
    next: 0,
    targets: cl.endpoints.map((address) => {
      const connectTimeoutMs = cl.connectTimeout ? parseDuration(cl.connectTimeout)! : DEFAULT_CONNECT_TIMEOUT_MS
      const servername = meshServername(cl.name, targetPort)
      return {
        cluster: cl.name,
        address,
        dispatcher: env.pools.mtls({ address, identities: cl.identities, connectTimeoutMs }, servername),
        timeoutMs: cl.timeout ? parseDuration(cl.timeout)! : DEFAULT_TIMEOUT_MS,
        idleTimeoutMs: IDLE_TIMEOUT_MS,
        identities: cl.identities,
        servername,
        connectTimeoutMs,
      }
    }),
  })
  const clusters: RoutedCluster[] = input.clusters.map((cl) => routedFor(cl, null))
  const portClusters: RoutedCluster[] = []
  const routes = input.configured ? new Map<string, RoutedCluster>() : new NoConfigRoutes()
  const byDst = new Map<string, RoutedCluster>()
  input.clusters.forEach((cl, i) => {
    const base = clusters[i]!
    for (const h of cl.hosts) routes.set(h.toLowerCase(), base)
    for (const a of cl.addresses ?? []) if (!byDst.has(canonicalIp(a))) byDst.set(canonicalIp(a), base)
    for (const p of cl.ports ?? []) {
      if (p.protocol === 'tcp' || p.protocol === 'tls') continue
      const r = routedFor(cl, p.targetPort ?? p.port)
      portClusters.push(r)
      for (const h of cl.hosts) if (!h.includes(':')) routes.set(`${h.toLowerCase()}:${p.port}`, r)
      for (const a of cl.addresses ?? []) byDst.set(`${canonicalIp(a)}:${p.port}`, r)
    }
  })
  // Local bind ports (outbound.listeners) name a cluster and a workload port; routed clusters for
  // ports nobody declared are made on first use (bounded by the listeners' ports).
  const named = new Map<string, RoutedCluster>()
  const byName = (name: string, targetPort: number | null): RoutedCluster | undefined => {
    const key = `${name}|${targetPort ?? ''}`
    let r = named.get(key)
    if (r === undefined) {
      // the app picks the ports it dials: past this many cluster×port pairs per snapshot, none is added
      if (named.size >= MAX_NAMED_PORTS) return undefined
      const i = input.clusters.findIndex((x) => x.name === name)
      if (i === -1) return undefined
      r = targetPort === null ? clusters[i]! : routedFor(input.clusters[i]!, targetPort)
      named.set(key, r)
      if (targetPort !== null) portClusters.push(r)
    }
    return r
  }
  for (const l of c.outbound.listeners) if (l.targetPort !== undefined) byName(l.cluster, l.targetPort)
  // A pod dialled by its own IP (headless services, direct calls): the endpoint's cluster, on the port dialled.
  const endpointIps = new Map<string, string>()
  for (const cl of input.clusters) {
    for (const e of cl.endpoints) {
      const host = e.startsWith('[') ? e.slice(1, e.indexOf(']')) : e.slice(0, e.lastIndexOf(':'))
      const ip = canonicalIp(host)
      if (ip !== '' && ip !== '127.0.0.1' && ip !== '::1' && !endpointIps.has(ip)) endpointIps.set(ip, cl.name)
    }
  }
  const byEndpoint = (ip: string, port: number): RoutedCluster | undefined => {
    const name = endpointIps.get(ip)
    return name === undefined ? undefined : byName(name, port)
  }
  const quarantineEntries = input.quarantine ?? []
  const qIds = new Map(quarantineEntries.map((q) => [q.identity, `by ${q.by}${q.reason ? `: ${q.reason}` : ''}`]))
  const quarantine: QuarantineSet = quarantineEntries.length === 0 ? NO_QUARANTINE : { identities: qIds, self: qIds.has(env.selfId), selfReason: qIds.get(env.selfId) ?? '' }
  const clusterIdentities = new Map(input.clusters.map((cl) => [cl.name, cl.identities]))
  const outboundPolicy: OutboundPolicy = c.outbound.trafficPolicy ?? input.outboundTrafficPolicy ?? DEFAULT_OUTBOUND_POLICY
  const l4 = buildL4Table(
    input.clusters.map((cl) => ({
      name: cl.name,
      hosts: cl.hosts,
      endpoints: cl.endpoints,
      identities: cl.identities,
      addresses: cl.addresses,
      ports: cl.ports,
      connectTimeoutMs: cl.connectTimeout ? parseDuration(cl.connectTimeout)! : DEFAULT_CONNECT_TIMEOUT_MS,
      labels: clusterLabels(cl),
    })),
    outboundPolicy,
    quarantine,
  )
  const external = async (ctx: RequestContext, address: string): Promise<RouteTarget | null> => {
    // REGISTRY_ONLY lets a named host through only to that host's own addresses (the Host is the app's to choose).
    if (!externalAllowed(l4, ctx.host) || (outboundPolicy.mode === 'REGISTRY_ONLY' && !(await env.hosts.has(ctx.host, ctx.originalDst!.address)))) {
      env.onOutboundRefused?.('http')
      return null
    }
    return {
      cluster: 'PassthroughCluster',
      address,
      dispatcher: env.pools.plain(address, DEFAULT_CONNECT_TIMEOUT_MS),
      timeoutMs: DEFAULT_TIMEOUT_MS,
      idleTimeoutMs: IDLE_TIMEOUT_MS,
      identities: null,
      servername: null,
      connectTimeoutMs: DEFAULT_CONNECT_TIMEOUT_MS,
    }
  }
  // Another port of the workload is reached on the address the caller reached the pod on (the pod
  // IP), never on loopback: as Istio since 1.10, a server bound to 127.0.0.1 only stays private.
  // The configured app port keeps its configured address. One target per address and port (bounded:
  // the pod's own addresses × 65535).
  const appPorts = new Map<string, RouteTarget>()
  const appOnPort = (port: number, host: string): RouteTarget => {
    if (port === appPort) return app
    const h = canonicalIp(host)
    const address = h.includes(':') ? `[${h}]:${port}` : `${h}:${port}`
    let t = appPorts.get(address)
    if (t === undefined) {
      t = { ...app, cluster: `inbound|${port}||`, address, dispatcher: env.pools.plain(address, DEFAULT_CONNECT_TIMEOUT_MS) }
      appPorts.set(address, t)
    }
    return t
  }
  const labels = new Map<string, WorkloadLabels>()
  const principals = new Map<string, string>()
  for (const cl of input.clusters) {
    labels.set(cl.name, clusterLabels(cl))
    if (cl.identities.length === 1) principals.set(cl.name, cl.identities[0]!)
  }
  const onInternalError = (err: unknown): void => logInternalError(env.logger, err)
  const pathNormalization = c.pathNormalization as PathNormalization
  const self = selfLabels(c, env.selfId)
  const telemetry = { tracing: env.tracing, metrics: env.metrics, self }
  return {
    configured: input.configured,
    clusterConfigs: input.clusters,
    version: input.version ?? createHash('sha256').update(JSON.stringify({ p: input.policies, c: input.clusters })).digest('hex').slice(0, 12),
    appliedAt: new Date(env.clock.now()).toISOString(),
    policies: input.policies,
    workloadPolicy: wp,
    jwtRules,
    mtlsMode,
    clusters,
    portClusters,
    app,
    appOnPort,
    l4,
    outboundPolicy,
    meshOutboundPolicy: input.outboundTrafficPolicy ?? null,
    quarantineEntries,
    quarantine,
    inbound: buildInboundHandler({ ownId: env.selfId, pathNormalization, mtlsMode, policy: wp, app, appPort, appOnPort, quarantine, jwt, onJwtResult, accessLog: env.accessLog, onInternalError, ...telemetry, upstream: env.upstream }),
    outbound: buildOutboundHandler({ pathNormalization, routes, destinations: { byDst, external, byName, byEndpoint }, quarantine, clusterIdentities, accessLog: env.accessLog, onInternalError, ...telemetry, clusterLabels: labels, clusterPrincipals: principals, upstream: env.upstream }),
  }
}
