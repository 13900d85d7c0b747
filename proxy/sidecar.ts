import type http from 'node:http'
import type net from 'node:net'
import type { PolicyDocument, WorkloadPolicy } from './policy/index.js'
import { certsDump, clustersDump, configDump, createAdminServer, listenServer } from './admin/index.js'
import { frontLimits, type ClusterConfig, type SidecarConfig } from './config/schema.js'
import { logInternalError, type Clock, type Logger } from './deps.js'
import { InboundListener } from './inbound/index.js'
import { PROXY_ERRORS, proxyError, type ProxyErrorCode } from './pipeline/index.js'
import { toAccessLogEntry, type AccessLogEntry, type AccessLogSink } from './stages/index.js'
import { createMetricsListener, createTracing, resolveTracingSettings, SidecarMetrics, type OtelEnv, type Tracing } from './telemetry/index.js'
import { JwksRegistry } from './authn/index.js'
import { CredentialStore, type Credentials } from './tls/index.js'
import { loadEngine, type Engine, type EngineFront, type EnginePools } from './engines/index.js'
import { compileRuntime, effectiveJwtSettings, RuntimeStore, workloadName, type CompileEnv, type CompileInput, type EffectiveJwtSettings, type SidecarJwtOptions } from './runtime/index.js'
import { RemoraError } from './errors/index.js'
import { OutboundListener } from './outbound/index.js'
import { HostAddresses, InboundConnections, OutboundConnections, TcpMetrics, canonicalIp } from './l4/index.js'
import type { Handler, OriginalDst } from './pipeline/index.js'
import { NativeError, nativeStatus, originalDst as nativeOriginalDst } from './native/index.js'
import { createH2Front, createH2Upstream, type H2Front, type H2Upstream } from './engines/h2/index.js'
import type { OutboundTrafficPolicy, QuarantineEntry } from './snapshot/index.js'
import type { QuarantineSet } from './stages/index.js'
import { mtlsModeFor } from './policy/index.js'
import { portOf, splitAddress } from './engines/common/index.js'
import { parseDuration } from './config/schema.js'
import { selfLabels } from './runtime/index.js'
import { createTrafficRecorder, teeAccessLog, trafficReportSettings, type TrafficReporting } from './traffic/index.js'


export type { Clock, Logger, EffectiveJwtSettings, SidecarJwtOptions }
export { effectiveJwtSettings }

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
  /** Reads a redirected connection's original destination (default: SO_ORIGINAL_DST through the native addon). */
  readonly originalDst?: (socket: net.Socket) => OriginalDst | null
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
  readonly outboundTrafficPolicy?: OutboundTrafficPolicy
  readonly quarantine?: readonly QuarantineEntry[]
}

/** A start-up failure that names the config field at fault (exit code 2). */
export class StartupError extends RemoraError<'REMORA_ERR_CONFIG_INVALID'> {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super('REMORA_ERR_CONFIG_INVALID', 400, `${field}: ${message}`)
  }
}

/**
 * One sidecar's lifecycle: inbound (:15006) and outbound (:15001) listeners, the admin endpoint
 * (:15000), the metrics listener, and the runtime store they all read. `start()` binds everything or
 * nothing; what a request runs on is compiled by proxy/runtime and swapped by its store.
 */
export class Sidecar {
  readonly creds: CredentialStore
  /** The forwarding engine (config.engine): its fronts, pools and terminal. */
  readonly engine: Engine
  /** The forwarding engine's upstream pools (undici for node-http, raw sockets for raw). */
  readonly pools: EnginePools
  /** JWKS sources shared across snapshots (one fetcher per jwksUri). */
  readonly jwks: JwksRegistry
  /** The JWT settings in force: config.jwt, with any field of deps.jwt winning. */
  readonly jwtSettings: EffectiveJwtSettings
  readonly ports = { inbound: 0, outbound: 0, admin: 0, metrics: 0 }
  readonly metrics: SidecarMetrics
  readonly tracing: Tracing | null
  /** The SPIFFE ID this sidecar runs as (the config names it; the certificate must match). */
  readonly selfId: string
  /** The traffic record and how often the control-plane client reports it (null: telemetry.trafficReport off). */
  readonly traffic: TrafficReporting | null
  readonly #env: CompileEnv
  readonly #runtime: RuntimeStore
  #metricsServer: http.Server
  #inbound: InboundListener
  #outbound: OutboundListener
  /** Local bind ports for one cluster each (outbound.listeners). */
  #fixedListeners: OutboundListener[] = []
  #outboundFront: EngineFront
  /** HTTP/2 fronts (h2c from the app, ALPN h2 from peers) and the HTTP/2 upstream. */
  readonly #h2In: H2Front
  readonly #h2Out: H2Front
  readonly #h2Upstream: H2Upstream
  readonly #tcpMetrics: TcpMetrics
  readonly #outboundTcp: OutboundConnections
  readonly #inboundTcp: InboundConnections
  readonly #hosts = new HostAddresses()
  #inboundFront: EngineFront
  #admin: http.Server
  #closed = false
  #started = false

  private constructor(
    readonly config: SidecarConfig,
    engine: Engine,
    credentials: Credentials | null,
    policies: readonly PolicyDocument[],
    private readonly deps: SidecarDeps,
    telemetry: { metrics: SidecarMetrics; tracing: Tracing | null },
  ) {
    this.creds = new CredentialStore(credentials)
    this.#h2Upstream = createH2Upstream(this.creds)
    this.engine = engine
    this.pools = this.engine.createPools(this.creds)
    this.jwtSettings = effectiveJwtSettings(config, deps.jwt)
    this.jwks = new JwksRegistry(
      { ...deps.jwt?.jwks, refreshIntervalMs: this.jwtSettings.jwksRefreshMs, cooldownMs: this.jwtSettings.jwksCooldownMs },
      { clock: deps.clock, logger: deps.logger, events: { onFetch: deps.jwt?.onJwksFetch } },
    )
    this.metrics = telemetry.metrics
    this.tracing = telemetry.tracing
    this.selfId = `spiffe://${config.trustDomain}/ns/${config.workload.namespace}/sa/${config.workload.serviceAccount}`
    // The stages and L4 write through the record first when it is on (proxy/traffic); parser refusals are not traffic.
    const traffic = trafficReportSettings(config)
    const recorder = traffic.enabled ? createTrafficRecorder({ defaultPort: () => portOf(this.#runtime.current.app.address), clock: deps.clock }) : null
    this.traffic = recorder ? { destination: { principal: this.selfId, namespace: config.workload.namespace, workload: workloadName(config) }, intervalMs: traffic.intervalMs, recorder } : null
    const accessLog = recorder ? teeAccessLog(recorder, deps.accessLog) : deps.accessLog
    this.#env = {
      config,
      selfId: this.selfId,
      pools: this.pools,
      jwks: this.jwks,
      jwtSettings: this.jwtSettings,
      onJwtResult: deps.jwt?.onResult,
      metrics: this.metrics,
      tracing: this.tracing,
      accessLog,
      upstream: this.#upstream(),
      clock: deps.clock,
      logger: deps.logger,
      onOutboundRefused: (kind) => this.#tcpMetrics.refused(kind),
      hosts: this.#hosts,
    }
    this.#tcpMetrics = new TcpMetrics(telemetry.metrics)
    this.#runtime = new RuntimeStore(compileRuntime({ policies, clusters: config.clusters, configured: credentials !== null }, this.#env), this)
    this.#runtime.onSwap(() => {
      const next = this.#runtime.current
      this.#h2Upstream.retain([...next.clusters, ...next.portClusters].flatMap((c) => c.targets))
    })
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
        response_code: PROXY_ERRORS[code as ProxyErrorCode]?.status ?? 400,
        response_flags: 'DPE',
        error_code: code,
        downstream_remote_address: remote,
        detail: parserCode,
      }
      deps.accessLog(e)
    }
    const onInternalError = (err: unknown): void => logInternalError(deps.logger, err)
    const rt = this.#runtime
    this.#inboundFront = this.engine.createFront({ direction: 'inbound', handler: () => rt.current.inbound, onParserError, onInternalError, limits: frontLimits(config.limits, 'inbound') })
    this.#outboundFront = this.engine.createFront({ direction: 'outbound', handler: () => rt.current.outbound, onParserError, onInternalError, limits: frontLimits(config.limits, 'outbound') })
    this.#h2In = createH2Front({ direction: 'inbound', handler: () => rt.current.inbound, onParserError, onInternalError, limits: frontLimits(config.limits, 'inbound') })
    this.#h2Out = createH2Front({ direction: 'outbound', handler: () => rt.current.outbound, onParserError, onInternalError, limits: frontLimits(config.limits, 'outbound') })
    const originalDst = deps.originalDst ?? nativeOriginalDst
    const l4Env = { hosts: this.#hosts, creds: this.creds, metrics: this.#tcpMetrics, accessLog, logger: deps.logger, self: () => selfLabels(config, this.selfId) }
    this.#outboundTcp = new OutboundConnections(l4Env)
    // One line and one count per mTLS connection this sidecar opens (never per request).
    this.creds.onHandshake((group, peer) => {
      this.#tcpMetrics.tlsHandshake(group)
      deps.logger.info({ event: 'upstream_tls_connected', group, peer }, 'mTLS connection opened')
    })
    this.#inboundTcp = new InboundConnections(l4Env)
    const ownPorts = (): ReadonlySet<number> => new Set([this.ports.inbound, this.ports.outbound, this.ports.admin, this.ports.metrics, ...this.#fixedListeners.map((l) => l.port)].filter((p) => p > 0))
    const headersTimeoutMs = (d: 'inbound' | 'outbound'): number => frontLimits(config.limits, d).requestHeadersTimeoutMs
    this.#inbound = new InboundListener({
      creds: this.creds,
      http: this.#inboundFront,
      h2: this.#h2In,
      tcp: (socket, conn) => {
        const st = rt.current
        // the configured app port on its configured address; another port on the address the caller reached (see appOnPort)
        const appHost = conn.port === portOf(st.app.address) ? splitAddress(st.app.address).host : canonicalIp(conn.localAddress)
        void this.#inboundTcp.accept(socket, conn, { workloadPolicy: st.workloadPolicy, appHost, quarantine: st.quarantine, onDecision: (d) => this.metrics.authzChildren(d.policy ?? '-', 'enforce')[d.action === 'ALLOW' ? 'allow' : 'deny'].value++ })
      },
      mtlsMode: (port) => mtlsModeFor(rt.current.workloadPolicy, port),
      defaultPort: () => portOf(rt.current.app.address),
      ownPorts,
      originalDst,
      metrics: this.#tcpMetrics,
      detectionTimeoutMs: parseDuration(config.outbound.protocolDetectionTimeout)!,
      directTimeoutMs: headersTimeoutMs('inbound'),
      onRefused: (reason, remote) => deps.logger.info({ event: 'inbound_connection_refused', reason, remote }, 'connection refused'),
      ...(config.inbound.app === undefined ? { refuseAll: 'this workload declares no inbound port (inbound.app is not set): nothing to forward to' } : {}),
    })
    const outboundOptions = {
      http: this.#outboundFront,
      h2: this.#h2Out,
      originalDst,
      table: () => (rt.current.configured ? rt.current.l4 : null),
      connections: this.#outboundTcp,
      metrics: this.#tcpMetrics,
      detectionTimeoutMs: parseDuration(config.outbound.protocolDetectionTimeout)!,
      directTimeoutMs: headersTimeoutMs('outbound'),
      logger: deps.logger,
    }
    this.#outbound = new OutboundListener(outboundOptions)
    this.#fixedListeners = config.outbound.listeners.map((l) => new OutboundListener({ ...outboundOptions, fixed: { cluster: l.cluster, port: l.servicePort ?? null, targetPort: l.targetPort ?? null } }))
    this.#admin = createAdminServer({
      isLive: () => !this.#closed,
      isReady: () =>
        this.#started && !this.#closed && rt.current.configured
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
    const engine = await loadEngine(opts.config.engine)
    const missing = engine.unavailable()
    if (missing !== null) throw new StartupError('engine', `${missing}; use --engine node-http`)
    // Loaded once, at start: without it no redirected connection could find its destination.
    const native = deps.originalDst ? { ok: true as const } : nativeStatus()
    if (!native.ok) throw new NativeError('REMORA_ERR_NATIVE_ADDON_MISSING', native.reason)
    const sc = new Sidecar(opts.config, engine, opts.credentials, opts.policies, deps, await Sidecar.#telemetry(opts.config, deps))
    const c = opts.config
    const bindings: [string, () => Promise<number>, (p: number) => void][] = [
      ['inbound.port', () => sc.#inbound.listen(c.inbound.port, c.inbound.bind), (p) => (sc.ports.inbound = p)],
      ['outbound.port', () => sc.#outbound.listen(c.outbound.port, c.outbound.bind), (p) => (sc.ports.outbound = p)],
      ...c.outbound.listeners.map((l, i): [string, () => Promise<number>, (p: number) => void] => [`outbound.listeners[${i}].port`, () => sc.#fixedListeners[i]!.listen(l.port, l.bind), () => {}]),
      ['admin.port', () => listenServer(sc.#admin, c.admin.port, c.admin.bind), (p) => (sc.ports.admin = p)],
    ]
    for (const [field, listen, set] of bindings) {
      try {
        set(await listen())
      } catch (err) {
        await sc.close()
        const e = err as NodeJS.ErrnoException
        const port = field === 'inbound.port' ? c.inbound.port : field === 'outbound.port' ? c.outbound.port : field === 'admin.port' ? c.admin.port : c.outbound.listeners[Number(/\d+/.exec(field)?.[0])]!.port
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
    const st = sc.#runtime.current
    deps.logger.info({ event: 'sidecar_started', identity: sc.selfId, engine: c.engine, ports: sc.ports, version: st.configured ? st.version : null }, 'remora sidecar started')
    return sc
  }

  /** The bound ports of outbound.listeners, in config order. */
  get listenerPorts(): number[] {
    return this.#fixedListeners.map((l) => l.port)
  }

  get version(): string {
    return this.#runtime.current.version
  }

  get workloadPolicy(): WorkloadPolicy {
    return this.#runtime.current.workloadPolicy
  }

  get configured(): boolean {
    return this.#runtime.current.configured
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
    let version: string
    try {
      version = this.#apply({ policies: snap.policies, clusters: snap.clusters, configured: true, version: snap.version, ...(snap.outboundTrafficPolicy ? { outboundTrafficPolicy: snap.outboundTrafficPolicy } : {}), ...(snap.quarantine ? { quarantine: snap.quarantine } : {}) })
    } catch (err) {
      if (credentials && prevCreds) this.creds.update(prevCreds)
      throw err
    }
    this.deps.logger.info({ event: 'config_applied', version, policies: snap.policies.length, clusters: snap.clusters.length }, 'snapshot applied')
    return version
  }

  /** Compiles a new policy set and swaps it in; in-flight requests finish on the old one. */
  applyPolicies(policies: readonly PolicyDocument[]): string {
    const cur = this.#runtime.current
    const version = this.#apply({ policies, clusters: cur.clusterConfigs, configured: true, quarantine: cur.quarantineEntries, ...(cur.meshOutboundPolicy ? { outboundTrafficPolicy: cur.meshOutboundPolicy } : {}) })
    this.deps.logger.info({ event: 'config_applied', version, policies: policies.length }, 'policy set applied')
    return version
  }

  #apply(input: CompileInput): string {
    const prev = this.#runtime.current.quarantine
    const next = compileRuntime(input, this.#env)
    this.#runtime.swap(next)
    this.#enforceQuarantine(prev, next.quarantine)
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

  /**
   * After a swap that quarantined someone: open connections from a newly quarantined peer are closed
   * (keep-alive HTTP/1.1, HTTP/2 sessions and TCP alike: they all ride the peer's mTLS socket), and
   * when this workload itself was quarantined, every connection it has, both ways.
   */
  #enforceQuarantine(prev: QuarantineSet, next: QuarantineSet): void {
    if (next.self && !prev.self) {
      const n = this.#inbound.closeAll() + this.#outbound.closeAll() + this.#fixedListeners.reduce((a, l) => a + l.closeAll(), 0)
      this.#outboundTcp.closeAll()
      this.#inboundTcp.closeAll()
      this.deps.logger.warn({ event: 'quarantined', identity: this.selfId, reason: next.selfReason, connectionsClosed: n }, 'this workload is quarantined: every connection closed, every request refused')
      return
    }
    const added = [...next.identities.keys()].filter((id) => !prev.identities.has(id))
    if (added.length === 0) return
    const set = new Set(added)
    const n = this.#inbound.closePeers((uri) => set.has(uri))
    this.deps.logger.warn({ event: 'quarantine_enforced', identities: added, connectionsClosed: n }, 'connections from quarantined identities closed')
  }

  /**
   * The terminal: HTTP/2 requests (from the h2 fronts) go out on multiplexed HTTP/2 sessions
   * (ALPN h2 to peers, h2c to the app), everything else on the engine's HTTP/1.1 path.
   */
  #upstream(): Handler {
    const h1 = this.engine.createUpstream()
    const h2 = this.#h2Upstream.handler
    return (ctx) => (ctx.req.httpVersion === '2.0' ? h2(ctx) : h1(ctx))
  }

  *#upstreamConnections(): Iterable<[string, number]> {
    const st = this.#runtime.current
    for (const c of st.clusters) for (const t of c.targets) yield [c.name, t.dispatcher.stats.connected]
    yield [st.app.cluster, st.app.dispatcher.stats.connected]
  }

  /** Called after every swap with the new version (the store also publishes on diagnostics_channel). */
  onSwap(fn: (version: string) => void): () => void {
    return this.#runtime.onSwap((e) => fn(e.version))
  }

  configDump(): unknown {
    return configDump({ config: this.config, selfId: this.selfId, state: this.#runtime.current, jwks: this.jwks, jwtSettings: this.jwtSettings })
  }

  certsDump(): unknown {
    return certsDump(this.creds, this.deps.clock)
  }

  clustersDump(): unknown {
    return clustersDump(this.config, this.#runtime.current, this.pools.stats())
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const closeServer = (s: http.Server | EngineFront): Promise<void> =>
      new Promise((r) => {
        if (!s.listening) return r()
        s.close(() => r())
        s.closeAllConnections()
      })
    this.engine.destroyTunnels(this.#inboundFront)
    this.engine.destroyTunnels(this.#outboundFront)
    this.#outboundTcp.closeAll()
    this.#inboundTcp.closeAll()
    await Promise.all([this.#inbound.close(), this.#outbound.close(), ...this.#fixedListeners.map((l) => l.close()), closeServer(this.#admin), closeServer(this.#metricsServer)])
    this.#inboundFront.closeAllConnections()
    this.#outboundFront.closeAllConnections()
    await Promise.all([this.#h2In.close(), this.#h2Out.close()])
    await this.#h2Upstream.close()
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

export { proxyError, toAccessLogEntry }
