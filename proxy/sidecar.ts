import { createHash } from 'node:crypto'
import type http from 'node:http'
import { compile, mtlsModeFor, selectForWorkload, type MtlsMode, type PathNormalization, type PolicyDocument, type WorkloadPolicy } from './policy/index.js'
import { createAdminServer, listenServer } from './admin/index.js'
import type { ClusterConfig, SidecarConfig } from './config/schema.js'
import { parseDuration } from './config/schema.js'
import { createHttpFront, destroyUpgradedSockets } from './http/server.js'
import { buildInboundHandler, InboundListener } from './inbound/index.js'
import { buildOutboundHandler } from './outbound/index.js'
import { proxyError, type Handler, type RouteTarget, type Stage } from './pipeline/index.js'
import { createMetricsStage, createTraceStage, toAccessLogEntry, UNKNOWN_WORKLOAD, type AccessLogEntry, type AccessLogSink, type RoutedCluster, type WorkloadLabels } from './stages/index.js'
import { parseSpiffeId } from './identity/index.js'
import { createMetricsListener, createTracing, resolveTracingSettings, SidecarMetrics, type OtelEnv, type Tracing } from './telemetry/index.js'
import { createJwtAuthenticator, JwksRegistry, type JwksRegistryOptions, type JwtOutcome } from './authn/index.js'
import { compileRequestAuthn, jwtRulesForWorkload, type CompiledJwtRule } from './policy/index.js'
import { CredentialStore, type Credentials } from './tls/index.js'
import { PoolRegistry } from './upstream/index.js'
import { createRawFront, createRawUpstreamHandler, RawPoolRegistry, rawEngineUnavailable, type RawFront } from './engine-raw/index.js'
import type { Pool } from 'undici'

export interface Clock {
  now(): number
}

/** pino-compatible subset. */
export interface Logger {
  debug(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

export interface SidecarDeps {
  readonly clock: Clock
  readonly logger: Logger
  readonly accessLog: AccessLogSink
  /**
   * JWT authentication: leeway, verified-token cache, JWKS fetching, and the control-plane key seam.
   * config.jwt (sidecar.yaml, flags) gives leeway, cache size and JWKS timings; a field set here wins.
   */
  readonly jwt?: SidecarJwtOptions
  /** OTEL_* variables (main.ts picks them from the environment); sidecar.yaml and flags win over them. */
  readonly otelEnv?: OtelEnv
  /** A ready tracer instead of the one config.telemetry.tracing describes (tests, benchmarks); null = off. */
  readonly tracing?: Tracing | null
}

export interface SidecarJwtOptions {
  /** exp/nbf clock skew in seconds; default config.jwt.leeway (60s). */
  readonly leewaySeconds?: number
  /** Verified tokens kept per snapshot (LRU); default config.jwt.cacheSize (4096), 0 = off. */
  readonly cacheSize?: number
  /**
   * Refresh interval, cooldown (default config.jwt.jwksRefresh / jwksCooldown), extra CAs, and
   * `provided`: keys shipped by the control plane instead of fetched.
   */
  readonly jwks?: JwksRegistryOptions
  /** Every JWT outcome (metric hook: remora_jwt_results_total{result,code}); must not throw. */
  readonly onResult?: (outcome: JwtOutcome) => void
  /** Every JWKS fetch attempt (metric hook); must not throw. */
  readonly onJwksFetch?: (jwksUri: string, outcome: 'ok' | 'error') => void
}

export interface SidecarStartOptions {
  readonly config: SidecarConfig
  /**
   * null: the sidecar waits for its control plane (config.controlPlane). Until `applySnapshot`
   * it fails closed: outbound answers 503 NC, inbound refuses connections, /ready is false.
   */
  readonly credentials: Credentials | null
  readonly policies: readonly PolicyDocument[]
}

/** A whole config from the control plane, already verified and validated by the caller. */
export interface SnapshotInput {
  readonly version: string
  readonly policies: readonly PolicyDocument[]
  readonly clusters: readonly ClusterConfig[]
}

/**
 * Before the first snapshot every outbound lookup fails closed with 503 NC. It throws inside the
 * route stage, so the outer stages (access log, metrics, rescue) still see and answer the request.
 */
class NoConfigRoutes extends Map<string, RoutedCluster> {
  override get(): never {
    throw proxyError('REMORA_ERR_NO_CONFIG', 'waiting for the first snapshot from the control plane')
  }
}

/** A start-up failure that names the config field at fault (exit code 2). */
export class StartupError extends Error {
  readonly code = 'REMORA_ERR_CONFIG_INVALID'
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`)
    this.name = 'StartupError'
  }
}

/** Everything a request needs, compiled once per config/policy version and swapped atomically. */
interface RuntimeState {
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
  readonly jwtRules: readonly CompiledJwtRule[]
  readonly clusterConfigs: readonly ClusterConfig[]
}

const DEFAULT_TIMEOUT_MS = 15_000
const DEFAULT_CONNECT_TIMEOUT_MS = 5_000
const IDLE_TIMEOUT_MS = 300_000
/** The inbound target of a workload without inbound.app (a Job): port 0, never dialled (the listener refuses first). */
const NO_INBOUND_APP = '127.0.0.1:0'

function hostPortOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1))
}

/**
 * One sidecar: inbound (:15006) and outbound (:15001) listeners, the admin endpoint (:15000), and
 * the compiled state they share. `start()` binds everything or nothing.
 */
export class Sidecar {
  readonly creds: CredentialStore
  /** The forwarding engine's upstream pools (undici for node-http, raw sockets for raw). */
  readonly pools: PoolRegistry | RawPoolRegistry
  /** JWKS sources shared across snapshots (one fetcher per jwksUri). */
  readonly jwks: JwksRegistry
  /** The JWT settings in force: config.jwt, with any field of deps.jwt winning. */
  readonly jwtSettings: EffectiveJwtSettings
  readonly ports = { inbound: 0, outbound: 0, admin: 0, metrics: 0 }
  readonly metrics: SidecarMetrics
  readonly tracing: Tracing | null
  /** The SPIFFE ID this sidecar runs as (the config names it; the certificate must match). */
  readonly selfId: string
  #metricsServer: http.Server
  #state: RuntimeState
  #inbound: InboundListener
  #outboundFront: http.Server | RawFront
  #inboundFront: http.Server | RawFront
  /** The engine's terminal handler; undefined = the node:http engine's default. */
  readonly #upstream: Handler | undefined
  #admin: http.Server
  #closed = false
  #started = false
  readonly #swapListeners = new Set<(version: string) => void>()

  private constructor(
    readonly config: SidecarConfig,
    credentials: Credentials | null,
    policies: readonly PolicyDocument[],
    private readonly deps: SidecarDeps,
    telemetry: { metrics: SidecarMetrics; tracing: Tracing | null },
  ) {
    this.creds = new CredentialStore(credentials)
    const raw = config.engine === 'raw'
    this.pools = raw ? new RawPoolRegistry(this.creds) : new PoolRegistry(this.creds)
    this.#upstream = raw ? createRawUpstreamHandler() : undefined
    this.jwtSettings = effectiveJwtSettings(config, deps.jwt)
    this.jwks = new JwksRegistry(
      { ...deps.jwt?.jwks, refreshIntervalMs: this.jwtSettings.jwksRefreshMs, cooldownMs: this.jwtSettings.jwksCooldownMs },
      { clock: deps.clock, logger: deps.logger, events: { onFetch: deps.jwt?.onJwksFetch } },
    )
    this.metrics = telemetry.metrics
    this.tracing = telemetry.tracing
    this.selfId = `spiffe://${config.trustDomain}/ns/${config.workload.namespace}/sa/${config.workload.serviceAccount}`
    this.#state = this.#build(policies, config.clusters, credentials !== null)
    this.metrics.setConfigVersion(this.#state.version)
    this.metrics.attach({
      certExpirySeconds: () => (this.creds.hasCredentials ? (this.creds.current.notAfter.getTime() - deps.clock.now()) / 1000 : 0),
      upstreamConnections: () => this.#upstreamConnections(),
    })
    this.#metricsServer = createMetricsListener(this.metrics)
    const onParserError = ({ code, parserCode, remote, direction }: { code: string; parserCode: string; remote: string; direction: 'inbound' | 'outbound' }): void => {
      const e: AccessLogEntry = {
        ...EMPTY_ENTRY,
        start_time: new Date(deps.clock.now()).toISOString(),
        direction,
        response_code: code === 'REMORA_ERR_HEADERS_TOO_LARGE' ? 431 : 400,
        response_flags: 'DPE',
        error_code: code,
        downstream_remote_address: remote,
        detail: parserCode,
      }
      deps.accessLog(e)
    }
    const createFront = raw ? createRawFront : createHttpFront
    const onInternalError = (err: unknown): void =>
      deps.logger.error({ event: 'internal_error', err: err instanceof Error ? { name: err.name, message: err.message, stack: err.stack } : String(err) }, 'internal error')
    this.#inboundFront = createFront({ direction: 'inbound', handler: () => this.#state.inbound, onParserError, onInternalError })
    this.#outboundFront = createFront({ direction: 'outbound', handler: () => this.#state.outbound, onParserError, onInternalError })
    this.#inbound = new InboundListener({
      creds: this.creds,
      http: this.#inboundFront,
      mtlsMode: () => this.#state.mtlsMode,
      onRefused: (reason, remote) => deps.logger.info({ event: 'inbound_connection_refused', reason, remote }, 'connection refused'),
      ...(config.inbound.app === undefined ? { refuseAll: 'this workload declares no inbound port (inbound.app is not set): nothing to forward to' } : {}),
    })
    this.#admin = createAdminServer({
      isLive: () => !this.#closed,
      isReady: () =>
        this.#started && !this.#closed && this.#state.configured
          ? { ready: true, reason: 'listeners up, credentials loaded, config applied' }
          : { ready: false, reason: this.#closed ? 'shutting down' : this.#started ? 'no config yet: waiting for the first snapshot from the control plane' : 'starting' },
      configDump: () => this.configDump(),
      certs: () => this.certsDump(),
      clusters: () => this.clustersDump(),
      metrics: () => this.metrics.scrape(),
    })
  }

  /** Metrics and the tracer are built before the listeners: the first compiled pipeline already has them. */
  static async #telemetry(config: SidecarConfig, deps: SidecarDeps): Promise<{ metrics: SidecarMetrics; tracing: Tracing | null }> {
    const metrics = new SidecarMetrics()
    if (deps.tracing !== undefined) return { metrics, tracing: deps.tracing }
    const settings = resolveTracingSettings(config.telemetry.tracing, deps.otelEnv)
    for (const w of settings.warnings) deps.logger.warn({ event: 'tracing_config_ignored', warning: w }, 'tracing setting ignored')
    let failing = false
    const tracing = await createTracing(
      settings,
      { workload: workloadName(config), namespace: config.workload.namespace },
      {
        onExported: (n) => {
          metrics.spansExported.value += n
          if (failing) deps.logger.info({ event: 'trace_export_recovered' }, 'trace export works again')
          failing = false
        },
        onDropped: (reason, n) => void (metrics.spansDropped.child([reason]).value += n),
        // Logged once per outage, not per batch: a dead collector must not flood the log.
        onExportError: (err) => {
          if (!failing) deps.logger.warn({ event: 'trace_export_failed', endpoint: settings.endpoint, error: err?.message }, 'trace export failing; spans are dropped and counted')
          failing = true
        },
      },
    )
    if (tracing) deps.logger.info({ event: 'tracing_enabled', exporter: settings.exporter, endpoint: settings.endpoint, sampling: settings.ratio, propagators: settings.propagators }, 'tracing enabled')
    return { metrics, tracing }
  }

  static async start(opts: SidecarStartOptions, deps: SidecarDeps): Promise<Sidecar> {
    const noRaw = opts.config.engine === 'raw' ? rawEngineUnavailable() : null
    if (noRaw !== null) throw new StartupError('engine', `${noRaw}; use --engine node-http`)
    const sc = new Sidecar(opts.config, opts.credentials, opts.policies, deps, await Sidecar.#telemetry(opts.config, deps))
    const c = opts.config
    const bindings: [string, () => Promise<number>, (p: number) => void][] = [
      ['inbound.port', () => sc.#inbound.listen(c.inbound.port, c.inbound.bind), (p) => (sc.ports.inbound = p)],
      ['outbound.port', () => listenServer(sc.#outboundFront, c.outbound.port, c.outbound.bind), (p) => (sc.ports.outbound = p)],
      ['admin.port', () => listenServer(sc.#admin, c.admin.port, c.admin.bind), (p) => (sc.ports.admin = p)],
    ]
    for (const [field, listen, set] of bindings) {
      try {
        set(await listen())
      } catch (err) {
        await sc.close()
        const e = err as NodeJS.ErrnoException
        const port = field === 'inbound.port' ? c.inbound.port : field === 'outbound.port' ? c.outbound.port : c.admin.port
        const what = e.code === 'EADDRINUSE' ? 'is already in use' : e.code === 'EACCES' ? 'cannot be bound (permission denied)' : `cannot be bound (${e.code ?? e.message})`
        throw new StartupError(field, `port ${port} ${what}`)
      }
    }
    // Istio's scrape port is a convenience beside the admin endpoint's /metrics: when it cannot be
    // bound (several sidecars on one host) the sidecar still starts, and says so.
    try {
      sc.ports.metrics = await listenServer(sc.#metricsServer, c.telemetry.metrics.port, c.telemetry.metrics.bind)
    } catch (err) {
      deps.logger.warn({ event: 'metrics_listener_unavailable', port: c.telemetry.metrics.port, error: (err as NodeJS.ErrnoException).code ?? String(err) }, 'metrics port not bound; /metrics stays on the admin port')
    }
    sc.#started = true
    deps.logger.info({ event: 'sidecar_started', identity: sc.selfId, engine: c.engine, ports: sc.ports, version: sc.#state.configured ? sc.#state.version : null }, 'remora sidecar started')
    return sc
  }

  get version(): string {
    return this.#state.version
  }

  get workloadPolicy(): WorkloadPolicy {
    return this.#state.workloadPolicy
  }

  get configured(): boolean {
    return this.#state.configured
  }

  /**
   * Swaps in a whole snapshot (policies + clusters) from the control plane; with `credentials`
   * (the first snapshot, or a new trust bundle) they are installed first, so the inbound listener
   * starts accepting only once there is a config to serve with. In-flight requests finish on the
   * old state. Throws (and changes nothing) when the snapshot cannot be compiled: the caller NACKs.
   */
  applySnapshot(snap: SnapshotInput, credentials?: Credentials): string {
    const prevCreds = this.creds.hasCredentials ? this.creds.current : null
    if (credentials) this.creds.update(credentials)
    let next: RuntimeState
    try {
      next = this.#build(snap.policies, snap.clusters, true, snap.version)
    } catch (err) {
      if (credentials && prevCreds) this.creds.update(prevCreds)
      throw err
    }
    this.#state = next
    this.metrics.setConfigVersion(next.version)
    this.#retainPools()
    for (const fn of this.#swapListeners) fn(next.version)
    this.deps.logger.info({ event: 'config_applied', version: next.version, policies: snap.policies.length, clusters: snap.clusters.length }, 'snapshot applied')
    return next.version
  }

  /** Compiles a new policy set and swaps it in; in-flight requests finish on the old one. */
  applyPolicies(policies: readonly PolicyDocument[]): string {
    const next = this.#build(policies, this.#state.clusterConfigs, true)
    this.#state = next
    this.metrics.setConfigVersion(next.version)
    this.#retainPools()
    for (const fn of this.#swapListeners) fn(next.version)
    this.deps.logger.info({ event: 'config_applied', version: next.version, policies: policies.length }, 'policy set applied')
    return next.version
  }

  /** A config or policy update was refused and the last good one stays (counted in remora_config_rejected_total). */
  noteConfigRejected(): void {
    this.metrics.configRejected.value++
  }

  /** Exports every finished span now (tests, shutdown). */
  flushTraces(): Promise<void> {
    return this.tracing?.forceFlush() ?? Promise.resolve()
  }

  *#upstreamConnections(): Iterable<[string, number]> {
    for (const c of this.#state.clusters) for (const t of c.targets) yield [c.name, (t.dispatcher as Pool).stats.connected]
    const app = this.#appTarget()
    yield [app.cluster, (app.dispatcher as Pool).stats.connected]
  }

  /** The trace and metrics stages for one direction, with everything they label computed now. */
  #observeStages(direction: 'inbound' | 'outbound', clusterConfigs: readonly ClusterConfig[]): Stage[] {
    const c = this.config
    const stages: Stage[] = []
    const clusters = new Map<string, WorkloadLabels>()
    const principals = new Map<string, string>()
    if (direction === 'outbound') {
      for (const cl of clusterConfigs) {
        clusters.set(cl.name, clusterLabels(cl.name, cl.hosts, cl.identities))
        if (cl.identities.length === 1) principals.set(cl.name, cl.identities[0]!)
      }
    }
    if (this.tracing) stages.push(createTraceStage({ tracing: this.tracing, direction, jaegerUi: this.tracing.settings.jaegerUi, clusterPrincipals: principals }))
    stages.push(createMetricsStage({ metrics: this.metrics, direction, self: selfLabels(c, this.selfId), clusters }))
    return stages
  }

  onSwap(fn: (version: string) => void): () => void {
    this.#swapListeners.add(fn)
    return () => this.#swapListeners.delete(fn)
  }

  #retainPools(): void {
    this.jwks.retain(this.#state.jwtRules)
    const keep = new Set<Pool>()
    for (const c of this.#state.clusters) for (const t of c.targets) keep.add(t.dispatcher as Pool)
    keep.add(this.#appTarget().dispatcher as Pool)
    this.pools.retain(keep)
  }

  #appTarget(): RouteTarget {
    const c = this.config
    // Without inbound.app the listener refuses every connection: this placeholder is never dialled.
    const app = c.inbound.app ?? NO_INBOUND_APP
    return {
      cluster: `inbound|${hostPortOf(app)}||`,
      address: app,
      dispatcher: this.pools.plain(app, DEFAULT_CONNECT_TIMEOUT_MS),
      timeoutMs: c.inbound.timeout ? parseDuration(c.inbound.timeout)! : DEFAULT_TIMEOUT_MS,
      idleTimeoutMs: IDLE_TIMEOUT_MS,
    }
  }

  #build(policies: readonly PolicyDocument[], clusterConfigs: readonly ClusterConfig[], configured: boolean, snapshotVersion?: string): RuntimeState {
    const c = this.config
    const set = compile(policies, { rootNamespace: c.policies.rootNamespace })
    const wp = selectForWorkload(set, { namespace: c.workload.namespace, labels: c.workload.labels })
    const appPort = hostPortOf(c.inbound.app ?? NO_INBOUND_APP)
    const mtlsMode = mtlsModeFor(wp, appPort)
    const jwtRules = jwtRulesForWorkload(compileRequestAuthn(policies, { rootNamespace: c.policies.rootNamespace }), { namespace: c.workload.namespace, labels: c.workload.labels }).rules
    const jwtOpts = this.deps.jwt
    const jwt =
      jwtRules.length === 0
        ? null
        : createJwtAuthenticator(
            jwtRules,
            { leewaySeconds: this.jwtSettings.leewaySeconds, cacheSize: this.jwtSettings.cacheSize, sourceFor: (r) => this.jwks.sourceFor(r) },
            { clock: this.deps.clock, logger: this.deps.logger },
          )
    // Every JWT outcome is counted (remora_jwt_validations_total{result}: ok, missing or the error code).
    const onJwtResult = (_ctx: unknown, o: JwtOutcome): void => {
      this.metrics.jwtResult(o.result === 'invalid' ? o.code : o.result)
      jwtOpts?.onResult?.(o)
    }
    const clusters: RoutedCluster[] = clusterConfigs.map((cl) => ({
      name: cl.name,
      next: 0,
      targets: cl.endpoints.map((address) => ({
        cluster: cl.name,
        address,
        dispatcher: this.pools.mtls(
          { address, identities: cl.identities, connectTimeoutMs: cl.connectTimeout ? parseDuration(cl.connectTimeout)! : DEFAULT_CONNECT_TIMEOUT_MS },
          cl.name,
        ),
        timeoutMs: cl.timeout ? parseDuration(cl.timeout)! : DEFAULT_TIMEOUT_MS,
        idleTimeoutMs: IDLE_TIMEOUT_MS,
      })),
    }))
    const routes = configured ? new Map<string, RoutedCluster>() : new NoConfigRoutes()
    clusterConfigs.forEach((cl, i) => {
      for (const h of cl.hosts) routes.set(h.toLowerCase(), clusters[i]!)
    })
    const onInternalError = (err: unknown): void =>
      this.deps.logger.error({ event: 'internal_error', err: err instanceof Error ? { name: err.name, message: err.message, stack: err.stack } : String(err) }, 'internal error')
    const pathNormalization = c.pathNormalization as PathNormalization
    const version =
      snapshotVersion ??
      createHash('sha256')
        .update(JSON.stringify({ p: policies, c: clusterConfigs }))
        .digest('hex')
        .slice(0, 12)
    return {
      configured,
      clusterConfigs,
      version,
      appliedAt: new Date(this.deps.clock.now()).toISOString(),
      policies,
      workloadPolicy: wp,
      jwtRules,
      mtlsMode,
      clusters,
      inbound: buildInboundHandler({
        ownId: this.selfId,
        pathNormalization,
        mtlsMode,
        policy: wp,
        app: this.#appTarget(),
        appPort,
        jwt,
        onJwtResult,
        accessLog: this.deps.accessLog,
        onInternalError,
        observe: this.#observeStages('inbound', clusterConfigs),
        upstream: this.#upstream,
      }),
      outbound: buildOutboundHandler({ pathNormalization, routes, accessLog: this.deps.accessLog, onInternalError, observe: this.#observeStages('outbound', clusterConfigs), upstream: this.#upstream }),
    }
  }

  configDump(): unknown {
    const s = this.#state
    return {
      version: s.configured ? s.version : null,
      appliedAt: s.configured ? s.appliedAt : null,
      config: this.config, // file paths only; key material is never part of the config
      identity: this.selfId,
      clusters: s.clusterConfigs,
      mtls: { mode: s.mtlsMode, policy: s.workloadPolicy.peerAuthn.policy },
      authorizationPolicies: s.workloadPolicy.authzPolicies.map((p) => ({ policy: p.policy, action: p.action, dryRun: p.dryRun })),
      policies: s.policies.map((p) => ({ kind: p.kind, namespace: p.metadata.namespace, name: p.metadata.name })),
      // Issuers, locations and where keys come from; never a key or a token.
      requestAuthentication: s.jwtRules.map((r) => ({ rule: r.id, issuer: r.issuer, audiences: r.audiences, jwks: r.jwksUri ?? 'inline', locations: r.locations, forwardOriginalToken: r.forwardOriginalToken })),
      jwks: this.jwks.status(),
      // The JWT settings in force (config.jwt unless the embedding code overrode a field).
      jwtSettings: this.jwtSettings,
    }
  }

  certsDump(): unknown {
    if (!this.creds.hasCredentials) return { identity: null, reason: 'no workload certificate yet (waiting for the control plane)' }
    const c = this.creds.current
    return {
      identity: c.identity.uri,
      serial: c.serial,
      notBefore: c.notBefore.toISOString(),
      notAfter: c.notAfter.toISOString(),
      expiresInSeconds: Math.round((c.notAfter.getTime() - this.deps.clock.now()) / 1000),
      trustDomains: [...c.trustDomains],
      trustBundle: c.trustBundle,
    }
  }

  clustersDump(): unknown {
    const stats = new Map(this.pools.stats().map((s) => [s.key, s]))
    const statFor = (address: string): unknown => [...stats.values()].find((s) => s.key.includes(`|${address}|`)) ?? null
    return {
      inbound: { cluster: this.#appTarget().cluster, address: this.config.inbound.app ?? null, pool: this.config.inbound.app ? statFor(this.config.inbound.app) : null },
      outbound: this.#state.clusters.map((cl) => ({
        name: cl.name,
        hosts: this.#state.clusterConfigs.find((x) => x.name === cl.name)?.hosts ?? [],
        identities: this.#state.clusterConfigs.find((x) => x.name === cl.name)?.identities ?? [],
        endpoints: cl.targets.map((t) => ({ address: t.address, timeoutMs: t.timeoutMs, pool: statFor(t.address) })),
      })),
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const closeServer = (s: http.Server | RawFront): Promise<void> =>
      new Promise((r) => {
        if (!s.listening) return r()
        s.close(() => r())
        s.closeAllConnections()
      })
    destroyUpgradedSockets(this.#inboundFront)
    destroyUpgradedSockets(this.#outboundFront)
    await Promise.all([this.#inbound.close(), closeServer(this.#outboundFront), closeServer(this.#admin), closeServer(this.#metricsServer)])
    this.#inboundFront.closeAllConnections()
    await this.pools.close()
    await this.jwks.close()
    await this.creds.close()
    // Last spans out, but a dead or slow collector must not hold shutdown for long.
    if (this.tracing) await Promise.race([this.tracing.shutdown().catch(() => {}), new Promise((r) => setTimeout(r, 2000).unref())])
  }
}

const EMPTY_ENTRY: AccessLogEntry = {
  start_time: '',
  direction: 'inbound',
  method: '-',
  authority: '-',
  path: '-',
  protocol: '-',
  response_code: 0,
  response_flags: '-',
  error_code: null,
  duration_ms: 0,
  upstream_service_time_ms: null,
  bytes_received: 0,
  bytes_sent: 0,
  upstream_cluster: null,
  upstream_host: null,
  downstream_remote_address: '',
  downstream_peer_principal: null,
  connection_security_policy: 'none',
  request_id: '-',
  authz_decision: null,
  authz_policy: null,
  authz_reason: null,
  trace_id: null,
  span_id: null,
}

/** The JWT settings a sidecar runs with, in the units the authenticator and JWKS sources take. */
export interface EffectiveJwtSettings {
  readonly leewaySeconds: number
  readonly cacheSize: number
  readonly jwksRefreshMs: number
  readonly jwksCooldownMs: number
}

/** config.jwt (already validated: the durations parse), with each field of `over` that is set winning. */
export function effectiveJwtSettings(c: SidecarConfig, over: SidecarJwtOptions | undefined): EffectiveJwtSettings {
  return {
    leewaySeconds: over?.leewaySeconds ?? parseDuration(c.jwt.leeway)! / 1000,
    cacheSize: over?.cacheSize ?? c.jwt.cacheSize,
    jwksRefreshMs: over?.jwks?.refreshIntervalMs ?? parseDuration(c.jwt.jwksRefresh)!,
    jwksCooldownMs: over?.jwks?.cooldownMs ?? parseDuration(c.jwt.jwksCooldown)!,
  }
}

/** The workload's name as Istio's labels and the trace resource use it. */
function workloadName(c: SidecarConfig): string {
  return c.workload.name ?? c.workload.labels.app ?? c.workload.serviceAccount
}

function selfLabels(c: SidecarConfig, principal: string): WorkloadLabels {
  const workload = workloadName(c)
  const ns = c.workload.namespace
  return { workload, namespace: ns, principal, app: c.workload.labels.app ?? workload, service: `${workload}.${ns}.svc.cluster.local`, serviceName: workload }
}

// A cluster's destination labels from its config: the longest host (the FQDN) as the service, and
// workload/namespace from the SPIFFE ID secure naming requires, when there is exactly one.
function clusterLabels(name: string, hosts: readonly string[], identities: readonly string[]): WorkloadLabels {
  const service = hosts.map((h) => h.replace(/:\d+$/, '').toLowerCase()).reduce((a, b) => (b.length > a.length ? b : a), '')
  const id = identities.length === 1 ? parseSpiffeId(identities[0]!) : null
  return {
    workload: id?.serviceAccount ?? UNKNOWN_WORKLOAD.workload,
    namespace: id?.namespace ?? UNKNOWN_WORKLOAD.namespace,
    principal: id?.uri ?? UNKNOWN_WORKLOAD.principal,
    app: id?.serviceAccount ?? UNKNOWN_WORKLOAD.app,
    service: service || name,
    serviceName: name.split('.')[0] ?? name,
  }
}

export { proxyError, toAccessLogEntry }
