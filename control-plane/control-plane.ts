// The control plane's composition: one replica's parts wired together. Each part lives in its folder
// and owns one job; this file only builds them, connects their events and starts/stops them in order.
//
//   store ──watch──▶ ca/Authority        (root, signing key, trust bundle, serving certificate)
//         ──watch──▶ discovery/Registry  (registrations, heartbeats, platform endpoints → clusters)
//         ──watch──▶ push/Publisher      (policies + clusters → signed snapshot, debounced) ──▶ push/Hub ──▶ sidecars
//   api/ (HTTPS, TLS 1.3): sidecar routes (bootstrap, renew, stream, ACK/NACK) and admin routes
//   status/ (per-replica sidecar status, one coalesced writer to the store)
//   traffic/ (sidecars' traffic reports merged per workload and hour, retention; through the same writer)
import { createHash, randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { Registry } from 'prom-client'
import { DEFAULT_ROOT_NAMESPACE } from '../proxy/policy/index.js'
import type { OutboundTrafficPolicy } from '../proxy/snapshot/index.js'
import { listenApi, type ApiContext, type TokenReviewer } from './api/index.js'
import { Authority, type SigningKey } from './ca/index.js'
import type { ControlPlaneDeps, Logger } from './deps.js'
import { EndpointRegistry, type DiscoveryFeed } from './discovery/index.js'
import { createCpMetrics } from './metrics.js'
import { Publisher, createPushHub, type PolicyFeed, type PushHub, type SnapshotPayload } from './push/index.js'
import { StatusTracker, createCoalescedWriter, type StatusReport } from './status/index.js'
import type { Store } from './store/index.js'
import { TrafficRecord } from './traffic/index.js'
import { createUi } from './ui/index.js'

export type { ControlPlaneDeps, DiscoveryFeed, Logger, PolicyFeed, TokenReviewer }
export type { SidecarStatus, StatusReport } from './status/index.js'
export { nodeIdOf } from './api/index.js'
export { policyKey } from './push/index.js'

export interface ControlPlaneOptions {
  readonly store: Store
  readonly listen: { readonly host: string; readonly port: number }
  /** The address sidecars and the CLI are told to use (default: the bound host:port). */
  readonly advertise?: string
  readonly trustDomain?: string
  readonly rootNamespace?: string
  /** Workload certificate lifetime (default 24 h). */
  readonly certTtlMs?: number
  /** How long a gone sidecar's endpoint stays in clusters (default 30 s). */
  readonly graceMs?: number
  /** Replica heartbeat period (default graceMs / 3). */
  readonly heartbeatMs?: number
  /** Keep-alive frame period on sidecar streams (default 15 s). */
  readonly pingMs?: number
  /**
   * Discovery changes (a sidecar connecting, leaving, expiring) are pushed after this quiet period
   * (default 100 ms), and at most pushDebounceMaxMs (default 1 s) after the first of them. Policy
   * changes are pushed at once.
   */
  readonly pushDebounceMs?: number
  /** Mesh-wide outbound traffic policy pushed to every sidecar (absent: ALLOW_ANY, as Istio). */
  readonly outboundTrafficPolicy?: OutboundTrafficPolicy
  readonly pushDebounceMaxMs?: number
  readonly replicaId?: string
  /**
   * Policies from outside the store (`--source kubernetes`): the store's policies/ are not read;
   * apply and delete are refused (one source of truth, as with Istio: change policies with kubectl).
   */
  readonly policyFeed?: PolicyFeed
  /** Bootstrap with a platform credential besides join tokens (Kubernetes TokenReview). */
  readonly tokenReviewer?: TokenReviewer
  /** Endpoints from the platform (Kubernetes EndpointSlices), merged with the sidecars' registrations. */
  readonly discoveryFeed?: DiscoveryFeed
  /** How long the traffic record keeps what sidecars reported (default 24 h; hour buckets). */
  readonly trafficRetentionMs?: number
  /** Jaeger's UI base URL: the web view links an edge's sampled trace to `<jaegerUi>/trace/<id>` (absent: no link). */
  readonly jaegerUi?: string
}

export const CONTROL_PLANE_SA = 'remora-control-plane'
const HOUR = 3_600_000
const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex')

/** One control-plane replica. `start()` resolves when it serves; `close()` stops it in reverse order. */
export class ControlPlane {
  readonly events = new EventEmitter()
  readonly metrics = new Registry()
  readonly replicaId: string
  readonly trustDomain: string
  readonly rootNamespace: string
  readonly identity: string
  port = 0
  /** The admin token, only when this start created it (print once, never log). */
  adminTokenCreated: string | null = null

  readonly #o: ControlPlaneOptions & { graceMs: number; heartbeatMs: number; certTtlMs: number }
  readonly #deps: ControlPlaneDeps
  readonly #hub: PushHub
  readonly #registry: EndpointRegistry
  readonly #status: StatusTracker
  readonly #writer: ReturnType<typeof createCoalescedWriter>
  readonly #m: ReturnType<typeof createCpMetrics>
  readonly #traffic: TrafficRecord
  #authority!: Authority
  #publisher!: Publisher
  #api: Awaited<ReturnType<typeof listenApi>> | null = null
  #adminHash: string | null = null
  #watches: { close(): Promise<void> }[] = []
  #heartbeatTimer: NodeJS.Timeout | null = null
  #closed = false

  private constructor(o: ControlPlaneOptions, deps: ControlPlaneDeps) {
    const graceMs = o.graceMs ?? 30_000
    this.#o = { ...o, graceMs, heartbeatMs: o.heartbeatMs ?? Math.max(200, Math.floor(graceMs / 3)), certTtlMs: o.certTtlMs ?? 24 * HOUR }
    this.#deps = deps
    this.replicaId = o.replicaId ?? randomBytes(4).toString('hex')
    this.trustDomain = o.trustDomain ?? 'cluster.local'
    this.rootNamespace = o.rootNamespace ?? DEFAULT_ROOT_NAMESPACE
    this.identity = `spiffe://${this.trustDomain}/ns/${this.rootNamespace}/sa/${CONTROL_PLANE_SA}`
    this.#writer = createCoalescedWriter(o.store, deps.logger)
    this.#hub = createPushHub({
      pingMs: o.pingMs ?? 15_000,
      onPush: (s, version) => {
        this.#m.pushes.inc()
        this.#status.update(s.node, { versionPushed: version })
      },
    })
    this.#registry = new EndpointRegistry(
      { store: o.store, replicaId: this.replicaId, graceMs, heartbeatMs: this.#o.heartbeatMs, write: this.#writer.write, heldAddress: (node) => this.#hub.get(node)?.address, onChange: () => this.#publisher?.queue('discovery') },
      deps,
    )
    this.#status = new StatusTracker({ store: o.store, writer: this.#writer, replicaId: this.replicaId, graceMs, replicas: () => this.#registry.replicas, registration: (n) => this.#registry.get(n) }, deps)
    this.#m = createCpMetrics(this.metrics, () => this.#status.outOfSync(this.#hub.nodes(), this.version))
    this.#traffic = new TrafficRecord({ store: o.store, writer: this.#writer, replicaId: this.replicaId, retentionMs: o.trafficRetentionMs, onDropped: (n) => this.#m.trafficDropped.inc(n) }, deps)
  }

  static async start(o: ControlPlaneOptions, deps: ControlPlaneDeps): Promise<ControlPlane> {
    const cp = new ControlPlane(o, deps)
    try {
      await cp.#init()
    } catch (err) {
      await cp.close()
      throw err
    }
    return cp
  }

  get store(): Store {
    return this.#o.store
  }
  get caPem(): string {
    return this.#authority.caPem
  }
  get trustBundle(): string {
    return this.#authority.trustBundle
  }
  get signingJwk(): SigningKey['publicJwk'] {
    return this.#authority.signing.publicJwk
  }
  get version(): string | null {
    return this.#publisher?.version ?? null
  }
  get address(): string {
    return this.#o.advertise ?? `${this.#o.listen.host}:${this.port}`
  }
  get connectedSidecars(): number {
    return this.#hub.size
  }

  async #init(): Promise<void> {
    const { store } = this.#o
    const { logger } = this.#deps
    const td = this.trustDomain
    this.#authority = await Authority.load({ store, trustDomain: td, identity: this.identity, certTtlMs: this.#o.certTtlMs, onServingChange: () => this.#api?.setContext() }, this.#deps)
    const token = `remora_${randomBytes(32).toString('base64url')}`
    if (await store.create('admin/token.sha256', sha256(token))) this.adminTokenCreated = token
    this.#adminHash = await store.get('admin/token.sha256')
    this.#publisher = new Publisher(
      {
        store,
        trustDomain: td,
        rootNamespace: this.rootNamespace,
        hub: this.#hub,
        feed: this.#o.policyFeed,
        clusters: () => this.#registry.clusters(),
        trustBundle: () => this.#authority.trustBundle,
        signingKey: () => this.#authority.signing,
        ...(this.#o.outboundTrafficPolicy ? { outboundTrafficPolicy: this.#o.outboundTrafficPolicy } : {}),
        debounceMs: this.#o.pushDebounceMs ?? 100,
        debounceMaxMs: this.#o.pushDebounceMaxMs ?? 1000,
        onPublish: (snap) => {
          this.#m.snapshots.inc()
          this.events.emit('publish', snap.version)
        },
      },
      this.#deps,
    )

    const feed = this.#o.policyFeed
    // A feed starts before the first snapshot: sidecars never see an empty set while it syncs.
    if (feed) this.#watches.push(await feed.start({ trustDomain: td, rootNamespace: this.rootNamespace, onPolicies: (p, e) => this.#publisher.setPolicies(p, e) }))
    else this.#watches.push(await store.watch('policies/', () => this.#publisher.policiesChanged()))
    this.#watches.push(await store.watch('quarantine/', () => this.#publisher.quarantineChanged()))
    this.#watches.push(
      ...(await this.#registry.start()),
      await store.watch('admin/', () => void store.get('admin/token.sha256').then((h) => (this.#adminHash = h))),
      await store.watch('ca/', (e) => {
        void this.#authority.storeChanged(e.key, e.value).then(
          (changed) => {
            if (!changed) return
            this.events.emit('trust-bundle', this.#authority.trustBundle) // remora-ca-root follows (main.ts)
            this.#publisher.queue('config')
          },
          (err: unknown) => logger.error({ event: 'trust_bundle_read_failed', error: (err as Error).message }, 'cannot read the trust bundle; keeping the current one'),
        )
      }),
    )
    if (this.#o.discoveryFeed) this.#watches.push(await this.#o.discoveryFeed.start({ trustDomain: td, onEndpoints: (eps) => this.#registry.setPlatformEndpoints(eps) }))

    await this.#authority.issueServingCert()
    this.#traffic.start()
    this.#api = await listenApi(this.#apiContext(), this.#o.listen)
    this.port = this.#api.port
    await this.#registry.heartbeat(this.address)
    await this.#publisher.rebuild()
    this.#heartbeatTimer = setInterval(() => {
      void this.#registry.heartbeat(this.address).catch((err: unknown) => logger.warn({ event: 'heartbeat_failed', error: (err as Error).message }, 'replica heartbeat failed'))
      this.#publisher.queue('discovery') // grace-period expiry is a function of time
    }, this.#o.heartbeatMs)
    this.#heartbeatTimer.unref()
    logger.info(
      { event: 'control_plane_started', replica: this.replicaId, address: this.address, store: store.url, trustDomain: td, version: this.version, signingKid: this.#authority.signing.kid },
      'remora control plane started',
    )
  }

  #apiContext(): ApiContext {
    return {
      deps: this.#deps,
      trustDomain: this.trustDomain,
      rootNamespace: this.rootNamespace,
      identity: this.identity,
      replicaId: this.replicaId,
      store: this.#o.store,
      authority: this.#authority,
      publisher: this.#publisher,
      hub: this.#hub,
      registry: this.#registry,
      status: this.#status,
      ui: createUi({ jaegerUi: this.#o.jaegerUi ?? null }),
      traffic: this.#traffic,
      metrics: this.#m,
      promRegistry: this.metrics,
      events: this.events,
      feed: this.#o.policyFeed,
      tokenReviewer: this.#o.tokenReviewer,
      adminHash: () => this.#adminHash,
      statusReport: () => this.status(),
      createJoinToken: (ns, sa, ttl) => this.createJoinToken(ns, sa, ttl),
      closing: () => this.#closed,
    }
  }

  /** Test seam: signs and pushes an arbitrary payload (one the sidecars must NACK, say). Not reachable over the API. */
  publishRaw(payload: Omit<SnapshotPayload, 'version'> & { version?: string }): Promise<string> {
    return this.#publisher.publishRaw(payload)
  }

  /** Waits for pending rebuilds (tests, and `apply` so it can answer with the new version). */
  settle(): Promise<string | null> {
    return this.#publisher.settle()
  }

  async createJoinToken(namespace: string, serviceAccount: string, ttlMs: number): Promise<{ token: string; spiffeId: string; expiresAt: Date }> {
    return this.#authority.createJoinToken(`spiffe://${this.trustDomain}/ns/${namespace}/sa/${serviceAccount}`, ttlMs)
  }

  async status(): Promise<StatusReport> {
    const sidecars = await this.#status.read()
    return {
      version: this.version,
      replica: this.replicaId,
      replicas: this.#registry.liveReplicas(),
      policyErrors: (this.#publisher?.policyErrors ?? []).map((e) => `${e.source ?? ''} ${e.path}: ${e.message} (${e.code})`),
      sidecars,
      quarantine: [...(this.#publisher?.quarantine ?? [])],
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#heartbeatTimer) clearInterval(this.#heartbeatTimer)
    this.#authority?.close()
    this.#publisher?.close()
    this.#hub.close()
    for (const w of this.#watches) await w.close().catch(() => {})
    await this.#api?.close()
    await this.#traffic.close()
    this.#status.close()
    await this.#writer.flush()
  }
}
