import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { EventEmitter } from 'node:events'
import https from 'node:https'
import type http from 'node:http'
import type net from 'node:net'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml'
import { z } from 'zod'
import { DEFAULT_ROOT_NAMESPACE, validateDocuments, type PolicyDocument, type PolicyIssue, type PolicySource } from '../proxy/policy/index.js'
import {
  JOIN_TOKEN_ISSUER,
  createJoinToken,
  createRootCa,
  generateSigningKey,
  importSigningKey,
  isCaError,
  issueFromCsr,
  issueWorkloadCert,
  loadRootCa,
  verifyJoinToken,
  type Clock,
  type RootCa,
  type SigningKey,
} from './ca/index.js'
import { CpError, peerCertExpiry, peerOf, readJson, sendError, sendJson } from './api/index.js'
import { clustersFrom, type Registration, type ReplicaHeartbeat } from './discovery/index.js'
import { buildSnapshot, createPushHub, frame, signSnapshot, type PushHub, type SidecarStream, type SignedSnapshot, type SnapshotPayload } from './push/index.js'
import type { Store } from './store/index.js'

export interface Logger {
  debug(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

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
   * (default 100 ms), and at most pushDebounceMaxMs (default 1 s) after the first of them: a fleet
   * that reconnects at once gets a few snapshots, not one per sidecar to every sidecar (Istio's
   * PILOT_DEBOUNCE_AFTER/MAX). Policy changes are pushed at once.
   */
  readonly pushDebounceMs?: number
  readonly pushDebounceMaxMs?: number
  readonly replicaId?: string
  /**
   * Policies from outside the store (`--source kubernetes`): the feed delivers the whole valid set
   * each time it changes and the store's policies/ are not read; apply and delete are refused
   * (one source of truth, as with Istio: change policies with kubectl).
   */
  readonly policyFeed?: PolicyFeed
  /**
   * Bootstrap with a platform credential besides join tokens: a Kubernetes projected
   * service-account token, checked by TokenReview. Grants exactly that namespace/service account.
   */
  readonly tokenReviewer?: TokenReviewer
  /**
   * Endpoints from the platform (Kubernetes EndpointSlices of injected pods), merged with the
   * sidecars' own registrations into clusters: a Service's name routes even when it differs from
   * the sidecar's service name.
   */
  readonly discoveryFeed?: DiscoveryFeed
}

export interface DiscoveryFeed {
  start(ctx: {
    readonly trustDomain: string
    readonly onEndpoints: (endpoints: { service: string; namespace: string; address: string; serviceAccount: string; identity: string }[]) => void
  }): Promise<{ close(): Promise<void> }>
}

export interface PolicyFeed {
  /** Shown by `remora apply` when it is refused, e.g. "kubernetes". */
  readonly name: string
  /** Resolves once the first full set has been delivered (so no empty snapshot goes out first). */
  start(ctx: {
    readonly trustDomain: string
    readonly rootNamespace: string
    readonly onPolicies: (policies: PolicyDocument[], errors: PolicyIssue[]) => void
  }): Promise<{ close(): Promise<void> }>
}

export type TokenReviewer = (token: string) => Promise<{ ok: true; namespace: string; serviceAccount: string } | { ok: false; reason: string }>

export interface ControlPlaneDeps {
  readonly clock: Clock
  readonly logger: Logger
}

/** One sidecar as `remora status` shows it. */
export interface SidecarStatus {
  node: string
  identity: string
  address: string
  service: string
  replica: string
  connected: boolean
  connectedSince: string | null
  disconnectedAt: string | null
  versionPushed: string | null
  versionAcked: string | null
  ackedAt: string | null
  lastNack: { version: string; errors: string[]; at: string } | null
  certExpiry: string | null
}

export const CONTROL_PLANE_SA = 'remora-control-plane'
const HOUR = 3_600_000

const StreamHello = z.strictObject({
  service: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/).max(63),
  labels: z.record(z.string().max(253), z.string().max(253)).default({}),
  address: z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/),
  version: z.string().max(64).nullable().default(null),
})
const AckBody = z.strictObject({ node: z.string().max(64), version: z.string().max(64) })
const NackBody = z.strictObject({ node: z.string().max(64), version: z.string().max(64), errors: z.array(z.string().max(2000)).max(50) })
const CsrBody = z.strictObject({ csr: z.string().min(1).max(16_384) })
const BootstrapBody = z.strictObject({ token: z.string().min(1).max(8192), csr: z.string().min(1).max(16_384) })
const ApplyBody = z.strictObject({ sources: z.array(z.strictObject({ source: z.string().max(1024), text: z.string().max(1_000_000) })).min(1).max(1000), dryRun: z.boolean().default(false) })
const TokenBody = z.strictObject({
  namespace: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/),
  serviceAccount: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/),
  ttlSeconds: z.number().int().min(1).max(30 * 24 * 3600).default(3600),
})

function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body)
  if (!r.success) {
    const i = r.error.issues[0]!
    throw new CpError('REMORA_ERR_CP_BAD_REQUEST', `${i.path.join('.') || '(body)'}: ${i.message}`)
  }
  return r.data
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex')
/** A remora join token (our issuer), as opposed to a platform token for the reviewer; both paths verify fully. */
function isJoinToken(token: string): boolean {
  try {
    return (JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { iss?: unknown }).iss === JOIN_TOKEN_ISSUER
  } catch {
    return false
  }
}

export const nodeIdOf = (identity: string, address: string): string => sha256(`${identity}|${address}`).slice(0, 16)

/** Store key of one policy document: `policies/<namespace>/<Kind>/<name>.yaml`. */
export function policyKey(kind: string, namespace: string, name: string): string {
  return `policies/${namespace}/${kind}/${name}.yaml`
}

/**
 * The control plane: CA, signing key, join tokens, the policy set from the store, discovery, and
 * one HTTPS port (TLS 1.3) for everything. Routes under /v1/ say what they need: a join token
 * (bootstrap), a workload certificate (stream, ack, nack, renew) or the admin bearer token.
 */
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

  #ca!: RootCa
  #signing!: SigningKey
  #trustBundle = ''
  #adminHash: string | null = null
  #server!: https.Server
  #hub: PushHub
  #current: SignedSnapshot | null = null
  #policies: PolicyDocument[] = []
  #policyErrors: PolicyIssue[] = []
  /** Status buckets (first hex digit of the node id) changed since the last flush. */
  #dirtyBuckets = new Set<string>()
  #deferTimer: NodeJS.Timeout | null = null
  #validated = new Map<string, { text: string; v: ReturnType<typeof validateDocuments> }>()
  #regs = new Map<string, Registration>()
  #replicas = new Map<string, ReplicaHeartbeat>()
  #status = new Map<string, SidecarStatus>()
  #watches: { close(): Promise<void> }[] = []
  #timers: NodeJS.Timeout[] = []
  #serving: { certPem: string; keyPem: string } | null = null
  #servingTimer: NodeJS.Timeout | null = null
  #rebuildTimer: NodeJS.Timeout | null = null
  #rebuildAt = 0
  #configQueued = false
  #discoveryFirst = 0
  #rebuilding: Promise<void> = Promise.resolve()
  #policiesDirty = true
  #pendingWrites = new Map<string, string | null>()
  #writing = new Set<string>()
  #closed = false
  readonly #o: Required<Omit<ControlPlaneOptions, 'advertise' | 'replicaId' | 'policyFeed' | 'tokenReviewer' | 'discoveryFeed'>> & { advertise?: string }
  readonly #feed: PolicyFeed | undefined
  readonly #tokenReviewer: TokenReviewer | undefined
  readonly #discoveryFeed: DiscoveryFeed | undefined
  /** The discovery feed's endpoints, as registrations held by this replica (live while it heart-beats). */
  #platformRegs: Registration[] = []
  readonly #m: {
    connected: Gauge
    pushes: Counter
    acks: Counter
    nacks: Counter
    certs: Counter
    refused: Counter
    snapshots: Counter
    ackLatency: Histogram
  }
  #lastPublishAt = 0

  private constructor(
    o: ControlPlaneOptions,
    private readonly deps: ControlPlaneDeps,
  ) {
    const graceMs = o.graceMs ?? 30_000
    this.#o = {
      store: o.store,
      listen: o.listen,
      advertise: o.advertise,
      trustDomain: o.trustDomain ?? 'cluster.local',
      rootNamespace: o.rootNamespace ?? DEFAULT_ROOT_NAMESPACE,
      certTtlMs: o.certTtlMs ?? 24 * HOUR,
      graceMs,
      heartbeatMs: o.heartbeatMs ?? Math.max(200, Math.floor(graceMs / 3)),
      pingMs: o.pingMs ?? 15_000,
      pushDebounceMs: o.pushDebounceMs ?? 100,
      pushDebounceMaxMs: o.pushDebounceMaxMs ?? 1000,
    }
    this.replicaId = o.replicaId ?? randomBytes(4).toString('hex')
    this.#feed = o.policyFeed
    this.#tokenReviewer = o.tokenReviewer
    this.#discoveryFeed = o.discoveryFeed
    this.trustDomain = this.#o.trustDomain
    this.rootNamespace = this.#o.rootNamespace
    this.identity = `spiffe://${this.trustDomain}/ns/${this.rootNamespace}/sa/${CONTROL_PLANE_SA}`
    const reg = this.metrics
    this.#m = {
      connected: new Gauge({ name: 'remora_cp_connected_sidecars', help: 'Sidecar streams open on this replica', registers: [reg] }),
      pushes: new Counter({ name: 'remora_cp_snapshot_pushes_total', help: 'Snapshots written to sidecar streams', registers: [reg] }),
      acks: new Counter({ name: 'remora_cp_acks_total', help: 'Snapshot ACKs received', registers: [reg] }),
      nacks: new Counter({ name: 'remora_cp_nacks_total', help: 'Snapshot NACKs received', registers: [reg] }),
      certs: new Counter({ name: 'remora_cp_certificates_issued_total', help: 'Workload certificates issued', labelNames: ['kind'], registers: [reg] }),
      refused: new Counter({ name: 'remora_cp_requests_refused_total', help: 'API requests refused, by error code', labelNames: ['code'], registers: [reg] }),
      snapshots: new Counter({ name: 'remora_cp_snapshots_published_total', help: 'New snapshot versions published', registers: [reg] }),
      ackLatency: new Histogram({ name: 'remora_cp_ack_latency_seconds', help: 'From publishing a version to each ACK of it', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [reg] }),
    }
    new Gauge({
      name: 'remora_cp_sidecars_out_of_sync',
      help: 'Connected sidecars (this replica) whose ACKed version is not the current one',
      registers: [reg],
      collect: () => {
        const g = reg.getSingleMetric('remora_cp_sidecars_out_of_sync') as Gauge
        let n = 0
        for (const s of this.#hub.nodes()) if (this.#status.get(s.node)?.versionAcked !== this.#current?.version) n++
        g.set(n)
      },
    })
    this.#hub = createPushHub({
      pingMs: this.#o.pingMs,
      onPush: (s, version) => {
        this.#m.pushes.inc()
        this.#updateStatus(s.node, { versionPushed: version })
      },
    })
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
    return this.#ca.certPem
  }
  get trustBundle(): string {
    return this.#trustBundle
  }
  get signingJwk(): SigningKey['publicJwk'] {
    return this.#signing.publicJwk
  }
  get version(): string | null {
    return this.#current?.version ?? null
  }
  get address(): string {
    return this.#o.advertise ?? `${this.#o.listen.host}:${this.port}`
  }
  get connectedSidecars(): number {
    return this.#hub.size
  }

  async #init(): Promise<void> {
    const { store } = this.#o
    const td = this.trustDomain
    // First writer wins across replicas: create-if-absent, then read back whatever won.
    let root = await store.get('ca/root.json')
    if (root === null) {
      const fresh = await createRootCa({ trustDomain: td }, { clock: this.deps.clock })
      await store.create('ca/root.json', JSON.stringify({ certPem: fresh.certPem, keyPem: fresh.keyPem }))
      root = (await store.get('ca/root.json'))!
    }
    const r = JSON.parse(root) as { certPem: string; keyPem: string }
    this.#ca = await loadRootCa(r.certPem, r.keyPem, td)
    let sk = await store.get('ca/signing-key.json')
    if (sk === null) {
      const { privateJwk } = await generateSigningKey()
      await store.create('ca/signing-key.json', JSON.stringify(privateJwk))
      sk = (await store.get('ca/signing-key.json'))!
    }
    this.#signing = await importSigningKey(JSON.parse(sk))
    this.#trustBundle = await this.#readTrustBundle()
    const token = `remora_${randomBytes(32).toString('base64url')}`
    if (await store.create('admin/token.sha256', sha256(token))) this.adminTokenCreated = token
    this.#adminHash = await store.get('admin/token.sha256')

    if (this.#feed) {
      // Started before the first snapshot: sidecars never see an empty set while the feed syncs.
      this.#policiesDirty = false
      this.#watches.push(
        await this.#feed.start({
          trustDomain: td,
          rootNamespace: this.rootNamespace,
          onPolicies: (policies, errors) => {
            this.#policies = policies
            this.#policyErrors = errors
            this.#queueRebuild()
          },
        }),
      )
    } else {
      this.#watches.push(
        await store.watch('policies/', () => {
          this.#policiesDirty = true
          this.#queueRebuild()
        }),
      )
    }
    this.#watches.push(
      await store.watch('registrations/', (e) => {
        const node = e.key.slice('registrations/'.length)
        // This replica holds the live stream of that sidecar: its own registration is the truth,
        // and a store event for it can only be an echo, possibly stale (a file-store scan that read
        // a file mid-update), which must not drop a connected endpoint from every snapshot.
        const held = this.#hub.get(node)
        if (held) {
          const local = this.#regs.get(node)
          if (local?.connected && local.address === held.address) return
        }
        if (e.value === null) this.#regs.delete(node)
        else this.#regs.set(node, JSON.parse(e.value) as Registration)
        this.#queueRebuild('discovery')
      }),
      await store.watch('replicas/', (e) => {
        const id = e.key.slice('replicas/'.length)
        if (e.value === null) this.#replicas.delete(id)
        else this.#replicas.set(id, JSON.parse(e.value) as ReplicaHeartbeat)
      }),
      await store.watch('admin/', () => void store.get('admin/token.sha256').then((h) => (this.#adminHash = h))),
      await store.watch('ca/', (e) => {
        if (e.key === 'ca/trust-bundle.pem' || e.key === 'ca/root.json') {
          const root = e.key === 'ca/root.json' && e.value !== null ? this.#reloadRoot(e.value) : Promise.resolve()
          void root
            .then(() => this.#readTrustBundle())
            .then((b) => {
              if (b === this.#trustBundle) return
              this.#trustBundle = b
              this.#applyServerContext() // client certificates from an added root pass, from a removed one no longer
              this.events.emit('trust-bundle', b) // remora-ca-root follows (main.ts)
              this.#queueRebuild()
            })
            .catch((err: unknown) => this.deps.logger.error({ event: 'trust_bundle_read_failed', error: (err as Error).message }, 'cannot read the trust bundle; keeping the current one'))
        }
      }),
    )
    if (this.#discoveryFeed) {
      this.#watches.push(
        await this.#discoveryFeed.start({
          trustDomain: td,
          onEndpoints: (eps) => {
            this.#platformRegs = eps.map((e) => ({
              node: `platform:${e.address}`,
              identity: e.identity,
              namespace: e.namespace,
              serviceAccount: e.serviceAccount,
              service: e.service,
              labels: {},
              address: e.address,
              replica: this.replicaId,
              connected: true,
              disconnectedAt: null,
            }))
            this.#queueRebuild('discovery')
          },
        }),
      )
    }
    for (const [k, v] of await store.list('registrations/')) this.#regs.set(k.slice('registrations/'.length), JSON.parse(v) as Registration)
    for (const [k, v] of await store.list('replicas/')) this.#replicas.set(k.slice('replicas/'.length), JSON.parse(v) as ReplicaHeartbeat)

    await this.#issueServingCert()
    this.#server = https.createServer(
      {
        cert: this.#serving!.certPem,
        key: this.#serving!.keyPem,
        ca: this.#trustBundle,
        requestCert: true,
        rejectUnauthorized: false, // routes decide: bootstrap and the admin API take no client cert
        minVersion: 'TLSv1.3',
        keepAliveTimeout: 120_000,
      },
      (req, res) => void this.#handle(req, res),
    )
    this.#server.keepAliveTimeout = 120_000
    this.#server.headersTimeout = 30_000
    this.#server.requestTimeout = 0 // streams are long-lived; request bodies are small and capped
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject)
      this.#server.listen(this.#o.listen.port, this.#o.listen.host, () => {
        this.#server.removeListener('error', reject)
        resolve()
      })
    })
    this.port = (this.#server.address() as net.AddressInfo).port
    await this.#heartbeat()
    await this.#rebuild()
    this.#timers.push(
      setInterval(() => {
        void this.#heartbeat().catch((err: unknown) => this.deps.logger.warn({ event: 'heartbeat_failed', error: (err as Error).message }, 'replica heartbeat failed'))
        this.#queueRebuild('discovery') // grace-period expiry is a function of time
      }, this.#o.heartbeatMs),
    )
    for (const t of this.#timers) t.unref()
    this.deps.logger.info(
      { event: 'control_plane_started', replica: this.replicaId, address: this.address, store: this.#o.store.url, trustDomain: td, version: this.version, signingKid: this.#signing.kid },
      'remora control plane started',
    )
  }

  /**
   * Root rotation without a restart: a new `ca/root.json` (an operator's edit, or another replica's)
   * becomes the issuing root at once; the serving certificate is re-issued from it. An invalid one
   * is refused and logged, and the current root stays.
   */
  async #reloadRoot(value: string): Promise<void> {
    let ca: RootCa
    try {
      const r = JSON.parse(value) as { certPem?: unknown; keyPem?: unknown }
      if (typeof r.certPem !== 'string' || typeof r.keyPem !== 'string') throw new Error('expected {"certPem": …, "keyPem": …}')
      if (r.certPem === this.#ca.certPem) return
      ca = await loadRootCa(r.certPem, r.keyPem, this.trustDomain)
      if (ca.certPem === this.#ca.certPem) return // the same root, formatted differently
    } catch (err) {
      this.deps.logger.error({ event: 'ca_root_rejected', error: (err as Error).message }, 'ca/root.json is not a usable root; keeping the current one')
      return
    }
    this.#ca = ca
    await this.#issueServingCert()
    this.#applyServerContext()
    this.deps.logger.info({ event: 'ca_root_rotated', notAfter: ca.cert.notAfter.toISOString() }, 'issuing from the new root certificate')
  }

  /** New handshakes get the current serving certificate and are verified against the current trust bundle (TLS 1.3 only). */
  #applyServerContext(): void {
    if (!this.#server || !this.#serving) return
    this.#server.setSecureContext({ cert: this.#serving.certPem, key: this.#serving.keyPem, ca: this.#trustBundle, minVersion: 'TLSv1.3' })
  }

  async #readTrustBundle(): Promise<string> {
    const extra = await this.#o.store.get('ca/trust-bundle.pem')
    return this.#ca.certPem + (extra ? `${extra.trim()}\n` : '')
  }

  /** Issues the serving certificate from the current root and schedules its renewal at 70 % of the lifetime. */
  async #issueServingCert(): Promise<void> {
    const leaf = await issueWorkloadCert(this.#ca, { spiffeId: this.identity, ttlMs: Math.max(this.#o.certTtlMs, HOUR) }, { clock: this.deps.clock })
    this.#serving = { certPem: leaf.certPem + this.#ca.certPem, keyPem: leaf.keyPem }
    const life = leaf.notAfter.getTime() - this.deps.clock.now()
    if (this.#servingTimer) clearTimeout(this.#servingTimer)
    this.#servingTimer = setTimeout(
      () =>
        void this.#issueServingCert().then(
          () => this.#applyServerContext(), // new handshakes only; open connections keep theirs
          (err: unknown) => this.deps.logger.error({ event: 'serving_cert_renewal_failed', error: (err as Error).message }, 'cannot renew the serving certificate'),
        ),
      Math.max(1000, life * 0.7),
    )
    this.#servingTimer.unref()
  }

  async #heartbeat(): Promise<void> {
    const hb: ReplicaHeartbeat = { id: this.replicaId, address: this.address, lastSeen: new Date(this.deps.clock.now()).toISOString() }
    this.#replicas.set(this.replicaId, hb)
    await this.#o.store.put(`replicas/${this.replicaId}`, JSON.stringify(hb))
  }

  // ---- snapshots -------------------------------------------------------------------------

  /** Config changes rebuild within 5 ms; discovery changes are debounced (see pushDebounceMs). */
  #queueRebuild(kind: 'config' | 'discovery' = 'config'): void {
    if (this.#closed) return
    const now = this.deps.clock.now()
    let at: number
    if (kind === 'config') at = now + 5
    else {
      if (this.#discoveryFirst === 0) this.#discoveryFirst = now
      at = Math.min(now + this.#o.pushDebounceMs, this.#discoveryFirst + this.#o.pushDebounceMaxMs)
    }
    if (this.#rebuildTimer) {
      // A queued config rebuild comes sooner and covers discovery; a later config change is covered by the queued one.
      if (this.#configQueued || (kind === 'config' && at >= this.#rebuildAt)) {
        if (kind === 'config') this.#configQueued = true
        return
      }
      clearTimeout(this.#rebuildTimer)
    }
    if (kind === 'config') this.#configQueued = true
    this.#rebuildAt = at
    this.#rebuildTimer = setTimeout(
      () => {
        this.#rebuildTimer = null
        this.#configQueued = false
        this.#discoveryFirst = 0
        void this.#rebuild()
      },
      Math.max(0, at - now),
    )
  }

  /** Re-reads what changed, builds the snapshot, and publishes it when its version is new. Serialized. */
  #rebuild(): Promise<void> {
    this.#rebuilding = this.#rebuilding.then(async () => {
      if (this.#closed) return
      try {
        if (this.#policiesDirty) {
          this.#policiesDirty = false
          await this.#loadPolicies()
        }
        const clusters = clustersFrom([...this.#regs.values(), ...this.#platformRegs], this.#replicas, this.deps.clock.now(), this.#o.graceMs)
        const payload = buildSnapshot({ trustDomain: this.trustDomain, rootNamespace: this.rootNamespace, policies: this.#policies, clusters, trustBundle: this.#trustBundle })
        if (payload.version === this.#current?.version) return
        await this.#publish(payload)
      } catch (err) {
        this.deps.logger.error({ event: 'rebuild_failed', error: (err as Error).message }, 'cannot build a snapshot; keeping the current one')
      }
    })
    return this.#rebuilding
  }

  async #loadPolicies(): Promise<void> {
    if (this.#feed) return // the feed pushes its set; the store's policies/ are not ours to read
    const entries = await this.#o.store.list('policies/')
    // Each file is validated once per content (YAML parsing is the cost: ~0.6 ms a policy); an
    // apply of one policy re-reads the set but re-validates only what changed.
    const r: { policies: PolicyDocument[]; errors: PolicyIssue[] } = { policies: [], errors: [] }
    const seen = new Map<string, string>()
    const cache = new Map<string, { text: string; v: ReturnType<typeof validateDocuments> }>()
    for (const [source, text] of entries) {
      const hit = this.#validated.get(source)
      const v = hit?.text === text ? hit.v : validateDocuments([{ source, text } satisfies PolicySource], { trustDomains: [this.trustDomain], rootNamespace: this.rootNamespace })
      cache.set(source, { text, v })
      r.errors.push(...v.errors)
      for (const doc of v.policies) {
        const id = `${doc.kind} ${doc.metadata.namespace}/${doc.metadata.name}`
        const first = seen.get(id)
        if (first !== undefined) {
          r.errors.push({ code: 'REMORA_ERR_POLICY_DUPLICATE', severity: 'error', path: 'metadata.name', message: `${id} is already defined at ${first}`, source })
          continue
        }
        seen.set(id, source)
        r.policies.push(doc)
      }
    }
    this.#validated = cache
    if (r.errors.length) {
      // Never half-apply: an invalid edit made behind the API (GitOps) keeps the last good set.
      this.#policyErrors = r.errors
      this.deps.logger.error(
        { event: 'store_policies_rejected', errors: r.errors.map((e) => `${e.source ?? ''} ${e.path}: ${e.message} (${e.code})`) },
        'policies in the store are invalid; keeping the last good set',
      )
      return
    }
    this.#policyErrors = []
    this.#policies = r.policies
  }

  async #publish(payload: SnapshotPayload): Promise<void> {
    const snap = await signSnapshot(payload, this.#signing)
    this.#current = snap
    this.#lastPublishAt = this.deps.clock.now()
    this.#m.snapshots.inc()
    const n = this.#hub.broadcast(snap)
    this.events.emit('publish', snap.version)
    this.deps.logger.info({ event: 'snapshot_published', version: snap.version, policies: payload.policies.length, clusters: payload.clusters.length, streams: n }, 'snapshot published')
  }

  /**
   * Test seam: signs and pushes an arbitrary payload (for example one the sidecars must NACK),
   * bypassing the control plane's own validation. Not reachable over the API.
   */
  async publishRaw(payload: Omit<SnapshotPayload, 'version'> & { version?: string }): Promise<string> {
    const version = payload.version ?? sha256(JSON.stringify(payload)).slice(0, 16)
    const full = { ...payload, version } as SnapshotPayload
    await this.#publish(full)
    return version
  }

  /** Waits for pending rebuilds (tests, and `apply` so it can answer with the new version). */
  async settle(): Promise<string | null> {
    this.#policiesDirty = true
    await this.#rebuild()
    return this.version
  }

  async createJoinToken(namespace: string, serviceAccount: string, ttlMs: number): Promise<{ token: string; spiffeId: string; expiresAt: Date }> {
    const spiffeId = `spiffe://${this.trustDomain}/ns/${namespace}/sa/${serviceAccount}`
    return createJoinToken(this.#signing, spiffeId, ttlMs, { clock: this.deps.clock })
  }

  // ---- status ----------------------------------------------------------------------------

  #updateStatus(node: string, patch: Partial<SidecarStatus>): void {
    const cur = this.#status.get(node)
    if (!cur) return
    const next = { ...cur, ...patch }
    this.#status.set(node, next)
    this.#writeStatusLater(node)
  }

  /**
   * Status reaches the store at most every 200 ms, as one document per replica and bucket
   * (`status/<replica>/<first hex digit of the node id>`, 16 buckets): a push and its ACK at a
   * thousand sidecars become 16 writes, not 2,000. Readers (`status()`, close) flush first.
   */
  #writeStatusLater(node: string): void {
    this.#dirtyBuckets.add(node[0]!)
    this.#deferTimer ??= setTimeout(() => this.#flushDeferred(), 200)
  }

  #flushDeferred(): void {
    if (this.#deferTimer) clearTimeout(this.#deferTimer)
    this.#deferTimer = null
    if (this.#dirtyBuckets.size === 0) return
    const now = this.deps.clock.now()
    const buckets = new Map<string, SidecarStatus[]>([...this.#dirtyBuckets].map((b) => [b, []]))
    this.#dirtyBuckets.clear()
    for (const [node, st] of this.#status) {
      // Long gone sidecars leave the status (as `status` stops showing them).
      if (!st.connected && st.disconnectedAt && now - Date.parse(st.disconnectedAt) > this.#o.graceMs * 20) {
        this.#status.delete(node)
        continue
      }
      buckets.get(node[0]!)?.push(st)
    }
    for (const [b, list] of buckets) this.#writeLater(`status/${this.replicaId}/${b}`, list.length ? JSON.stringify({ replica: this.replicaId, at: new Date(now).toISOString(), sidecars: list }) : null)
  }

  /** Coalesced writes: at most one in flight per key, the latest value wins. */
  #writeLater(key: string, value: string | null): void {
    this.#pendingWrites.set(key, value)
    if (this.#writing.has(key)) return
    this.#writing.add(key)
    const drain = async (): Promise<void> => {
      while (this.#pendingWrites.has(key)) {
        const v = this.#pendingWrites.get(key)!
        this.#pendingWrites.delete(key)
        try {
          if (v === null) await this.#o.store.delete(key)
          else await this.#o.store.put(key, v)
        } catch (err) {
          this.deps.logger.warn({ event: 'store_write_failed', key, error: (err as Error).message }, 'store write failed')
        }
      }
      this.#writing.delete(key)
    }
    void drain()
  }

  async #flushWrites(): Promise<void> {
    this.#flushDeferred()
    while (this.#writing.size > 0) await new Promise((r) => setTimeout(r, 5))
  }

  async status(): Promise<{ version: string | null; replica: string; replicas: ReplicaHeartbeat[]; policyErrors: string[]; sidecars: SidecarStatus[] }> {
    await this.#flushWrites()
    const now = this.deps.clock.now()
    const all = await this.#o.store.list('status/')
    // One entry per node: a sidecar that moved replicas is shown where it is connected now.
    const byNode = new Map<string, SidecarStatus>()
    const since = (s: SidecarStatus): number => Math.max(Date.parse(s.connectedSince ?? '') || 0, Date.parse(s.disconnectedAt ?? '') || 0)
    for (const [key, v] of all) {
      let doc: { replica?: string; at?: string; sidecars?: SidecarStatus[] } & Partial<SidecarStatus>
      try {
        doc = JSON.parse(v) as typeof doc
      } catch {
        continue // a torn or foreign value: status is rebuilt by the running system
      }
      if (typeof doc.replica === 'string' && doc.replica !== this.replicaId && typeof doc.at === 'string') {
        // A replica silent for long (a restart under a new id): its sidecars are elsewhere or gone.
        // Both its documents and its heartbeat must be old: a replica that just started may not
        // have reached this one's watch yet.
        const hb = this.#replicas.get(doc.replica)
        const stale = (t: string): boolean => now - Date.parse(t) > this.#o.graceMs * 20
        if (stale(doc.at) && (!hb || stale(hb.lastSeen))) {
          this.#writeLater(key, null)
          continue
        }
      }
      // A bucket document, or one sidecar's (the layout before buckets).
      for (const s of Array.isArray(doc.sidecars) ? doc.sidecars : [doc as SidecarStatus]) {
        if (typeof s?.node !== 'string') continue
        // A stream held by a replica that stopped heart-beating is not connected any more.
        const hb = this.#replicas.get(s.replica)
        const alive = hb !== undefined && now - Date.parse(hb.lastSeen) < this.#o.graceMs * 2
        if (s.connected && !alive) s.connected = false
        const prev = byNode.get(s.node)
        if (prev && (prev.connected && !s.connected || (prev.connected === s.connected && since(prev) >= since(s)))) continue
        byNode.set(s.node, s)
      }
    }
    const sidecars: SidecarStatus[] = []
    for (const s of byNode.values()) {
      const reg = this.#regs.get(s.node)
      if (!s.connected && reg?.disconnectedAt && now - Date.parse(reg.disconnectedAt) > this.#o.graceMs * 20) continue
      sidecars.push(s)
    }
    sidecars.sort((a, b) => (a.identity === b.identity ? (a.address < b.address ? -1 : 1) : a.identity < b.identity ? -1 : 1))
    return {
      version: this.version,
      replica: this.replicaId,
      replicas: [...this.#replicas.values()].filter((r) => now - Date.parse(r.lastSeen) < this.#o.graceMs * 2),
      policyErrors: this.#policyErrors.map((e) => `${e.source ?? ''} ${e.path}: ${e.message} (${e.code})`),
      sidecars,
    }
  }

  // ---- HTTP ------------------------------------------------------------------------------

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://control-plane')
    const path = url.pathname
    const m = req.method ?? 'GET'
    try {
      if (path === '/healthz' && m === 'GET') return sendJson(res, 200, { ok: true, replica: this.replicaId, store: this.#o.store.kind, version: this.version })
      if (path === '/metrics' && m === 'GET') {
        const body = await this.metrics.metrics()
        res.writeHead(200, { 'content-type': this.metrics.contentType })
        return void res.end(body)
      }
      if (m === 'POST' && path === '/v1/bootstrap') return await this.#bootstrap(req, res)
      if (m === 'POST' && path === '/v1/stream') return await this.#stream(req, res)
      if (m === 'POST' && path === '/v1/ack') return await this.#ack(req, res, true)
      if (m === 'POST' && path === '/v1/nack') return await this.#ack(req, res, false)
      if (m === 'POST' && path === '/v1/renew') return await this.#renew(req, res)
      if (path.startsWith('/v1/')) {
        this.#admin(req)
        if (m === 'POST' && path === '/v1/apply') return await this.#apply(req, res)
        if (m === 'GET' && path === '/v1/policies') return await this.#getPolicies(url, res)
        if (m === 'GET' && path === '/v1/sources') return await this.#getSources(res)
        if (m === 'DELETE' && path.startsWith('/v1/policies/')) return await this.#deletePolicy(path, res)
        if (m === 'GET' && path === '/v1/status') return sendJson(res, 200, await this.status())
        if (m === 'POST' && path === '/v1/tokens') return await this.#token(req, res)
      }
      throw new CpError('REMORA_ERR_CP_NOT_FOUND', `${m} ${path}`)
    } catch (err) {
      const e =
        err instanceof CpError
          ? err
          : isCaError(err)
            ? Object.assign(new CpError('REMORA_ERR_CP_BAD_REQUEST', err.message), { code: err.code, status: err.status })
            : new CpError('REMORA_ERR_CP_INTERNAL')
      if (!(err instanceof CpError) && !isCaError(err)) this.deps.logger.error({ event: 'api_internal_error', path, error: (err as Error).message }, 'internal error')
      this.#m.refused.inc({ code: e.code })
      if (!res.headersSent) sendError(res, e)
      else res.end()
    }
  }

  #admin(req: http.IncomingMessage): void {
    const h = req.headers.authorization ?? ''
    const m = /^Bearer ([A-Za-z0-9_.~+/=-]+)$/.exec(h)
    const want = this.#adminHash
    if (!m || !want) throw new CpError('REMORA_ERR_CP_UNAUTHENTICATED')
    const got = Buffer.from(sha256(m[1]!), 'hex')
    const exp = Buffer.from(want.trim(), 'hex')
    if (got.length !== exp.length || !timingSafeEqual(got, exp)) throw new CpError('REMORA_ERR_CP_UNAUTHENTICATED')
  }

  async #bootstrap(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = parseBody(BootstrapBody, await readJson(req))
    const spiffeId = this.#tokenReviewer && !isJoinToken(body.token) ? await this.#reviewToken(this.#tokenReviewer, body.token) : await this.#verifyJoinToken(body.token)
    let issued
    try {
      issued = await issueFromCsr(this.#ca, body.csr, { spiffeId, ttlMs: this.#o.certTtlMs }, { clock: this.deps.clock })
    } catch (err) {
      this.deps.logger.warn({ event: 'bootstrap_refused', sub: spiffeId, code: (err as { code?: string }).code }, 'CSR refused')
      throw err
    }
    this.#m.certs.inc({ kind: 'bootstrap' })
    this.deps.logger.info({ event: 'bootstrap', sub: spiffeId, serial: issued.serial, notAfter: issued.notAfter.toISOString() }, 'workload certificate issued')
    sendJson(res, 200, {
      certPem: issued.certPem,
      trustBundle: this.#trustBundle,
      signingKey: this.#signing.publicJwk,
      controlPlaneIdentity: this.identity,
      trustDomain: this.trustDomain,
    })
  }

  async #verifyJoinToken(token: string): Promise<string> {
    const v = await verifyJoinToken(this.#signing, token, { clock: this.deps.clock })
    if (!v.ok) {
      this.deps.logger.warn({ event: 'bootstrap_refused', reason: v.reason, detail: v.detail }, 'join token refused')
      throw new CpError(v.reason === 'expired' ? 'REMORA_ERR_CP_TOKEN_EXPIRED' : 'REMORA_ERR_CP_TOKEN_INVALID', v.detail)
    }
    return v.claims.spiffeId
  }

  /** A platform token (Kubernetes): whoever the reviewer says it belongs to, and only that. Fails closed. */
  async #reviewToken(review: TokenReviewer, token: string): Promise<string> {
    let r: Awaited<ReturnType<TokenReviewer>>
    try {
      r = await review(token)
    } catch (err) {
      r = { ok: false, reason: `TokenReview unavailable: ${(err as Error).message}` }
    }
    if (!r.ok) {
      this.deps.logger.warn({ event: 'bootstrap_refused', reason: 'token_review', detail: r.reason }, 'service-account token refused')
      throw new CpError('REMORA_ERR_CP_TOKEN_INVALID', r.reason)
    }
    return `spiffe://${this.trustDomain}/ns/${r.namespace}/sa/${r.serviceAccount}`
  }

  async #renew(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const peer = peerOf(req, new Set([this.trustDomain]))
    const body = parseBody(CsrBody, await readJson(req))
    const issued = await issueFromCsr(this.#ca, body.csr, { spiffeId: peer.uri, ttlMs: this.#o.certTtlMs }, { clock: this.deps.clock })
    this.#m.certs.inc({ kind: 'renew' })
    for (const s of this.#hub.nodes()) if (s.identity === peer.uri) this.#updateStatus(s.node, { certExpiry: issued.notAfter.toISOString() })
    this.deps.logger.info({ event: 'renew', sub: peer.uri, serial: issued.serial, notAfter: issued.notAfter.toISOString() }, 'workload certificate renewed')
    sendJson(res, 200, { certPem: issued.certPem, trustBundle: this.#trustBundle })
  }

  async #stream(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const peer = peerOf(req, new Set([this.trustDomain]))
    const hello = parseBody(StreamHello, await readJson(req))
    const m = /^\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(peer.path)
    if (!m) throw new CpError('REMORA_ERR_CP_CLIENT_CERT_REQUIRED', `${peer.uri} is not a workload identity (/ns/<ns>/sa/<sa>)`)
    const node = nodeIdOf(peer.uri, hello.address)
    const now = new Date(this.deps.clock.now()).toISOString()
    const reg: Registration = {
      node,
      identity: peer.uri,
      namespace: m[1]!,
      serviceAccount: m[2]!,
      service: hello.service,
      labels: hello.labels,
      address: hello.address,
      replica: this.replicaId,
      connected: true,
      disconnectedAt: null,
    }
    this.#regs.set(node, reg)
    this.#writeLater(`registrations/${node}`, JSON.stringify(reg))
    const prev = this.#status.get(node)
    const st: SidecarStatus = {
      node,
      identity: peer.uri,
      address: hello.address,
      service: hello.service,
      replica: this.replicaId,
      connected: true,
      connectedSince: now,
      disconnectedAt: null,
      versionPushed: null,
      versionAcked: hello.version ?? prev?.versionAcked ?? null,
      ackedAt: prev?.ackedAt ?? null,
      lastNack: prev?.lastNack ?? null,
      certExpiry: peerCertExpiry(req),
    }
    this.#status.set(node, st)
    this.#writeStatusLater(node)
    req.socket.setKeepAlive(true, 10_000)
    req.socket.setNoDelay(true)
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store', 'x-remora-node': node })
    res.write(frame({ type: 'hello', node, replica: this.replicaId }))
    const stream: SidecarStream = { node, identity: peer.uri, address: hello.address, connectedSince: new Date(now), res, pushedVersion: hello.version }
    this.#hub.add(stream, this.#current && this.#current.version !== hello.version ? this.#current : null)
    this.#m.connected.set(this.#hub.size)
    this.#queueRebuild('discovery')
    this.deps.logger.info({ event: 'sidecar_connected', node, identity: peer.uri, address: hello.address, version: hello.version }, 'sidecar stream open')
    res.once('close', () => {
      if (this.#hub.get(node) !== stream) return // replaced by a newer stream of the same sidecar
      this.#hub.remove(stream)
      this.#m.connected.set(this.#hub.size)
      if (this.#closed) return
      const at = new Date(this.deps.clock.now()).toISOString()
      const r = { ...reg, connected: false, disconnectedAt: at }
      this.#regs.set(node, r)
      this.#writeLater(`registrations/${node}`, JSON.stringify(r))
      this.#updateStatus(node, { connected: false, disconnectedAt: at })
      this.#queueRebuild('discovery')
      this.deps.logger.info({ event: 'sidecar_disconnected', node, identity: peer.uri }, 'sidecar stream closed')
    })
  }

  async #ack(req: http.IncomingMessage, res: http.ServerResponse, ok: boolean): Promise<void> {
    const peer = peerOf(req, new Set([this.trustDomain]))
    const raw = await readJson(req)
    const body = ok ? parseBody(AckBody, raw) : parseBody(NackBody, raw)
    const st = this.#status.get(body.node)
    if (!st) throw new CpError('REMORA_ERR_CP_NOT_FOUND', `no stream for node ${body.node} on this replica`)
    if (st.identity !== peer.uri) throw new CpError('REMORA_ERR_CP_NODE_MISMATCH', `node ${body.node} is ${st.identity}, caller is ${peer.uri}`)
    const at = new Date(this.deps.clock.now()).toISOString()
    if (ok) {
      this.#updateStatus(body.node, { versionAcked: body.version, ackedAt: at })
      this.#m.acks.inc()
      if (body.version === this.#current?.version) this.#m.ackLatency.observe(Math.max(0, this.deps.clock.now() - this.#lastPublishAt) / 1000)
    } else {
      const errors = (body as z.infer<typeof NackBody>).errors
      this.#updateStatus(body.node, { lastNack: { version: body.version, errors, at } })
      this.#m.nacks.inc()
      this.deps.logger.warn({ event: 'snapshot_nacked', node: body.node, identity: peer.uri, version: body.version, errors }, 'sidecar rejected a snapshot')
    }
    this.events.emit(ok ? 'ack' : 'nack', { node: body.node, version: body.version })
    sendJson(res, 200, { ok: true })
  }

  #refuseWhenFed(): void {
    if (this.#feed) throw new CpError('REMORA_ERR_CP_POLICY_READ_ONLY', `policies come from ${this.#feed.name}; change them there (kubectl apply / delete)`)
  }

  async #apply(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    this.#refuseWhenFed()
    const body = parseBody(ApplyBody, await readJson(req))
    const r = validateDocuments(body.sources, { trustDomains: [this.trustDomain], rootNamespace: this.rootNamespace })
    if (r.errors.length) {
      throw new CpError('REMORA_ERR_CP_POLICY_INVALID', `${r.errors.length} error(s)`, { issues: r.errors, warnings: r.warnings })
    }
    const results: { kind: string; namespace: string; name: string; result: 'created' | 'configured' | 'unchanged' }[] = []
    const writes: [string, string][] = []
    const keys = r.policies.map((doc) => policyKey(doc.kind, doc.metadata.namespace ?? 'default', doc.metadata.name))
    const prevs = await Promise.all(keys.map((k) => this.#o.store.get(k)))
    for (const [i, doc] of r.policies.entries()) {
      const ns = doc.metadata.namespace ?? 'default'
      const key = keys[i]!
      const text = stringifyYaml(doc)
      const prev = prevs[i]!
      const result = prev === null ? 'created' : prev === text ? 'unchanged' : 'configured'
      results.push({ kind: doc.kind, namespace: ns, name: doc.metadata.name, result })
      if (result !== 'unchanged') writes.push([key, text])
    }
    if (!body.dryRun) for (const [k, t] of writes) await this.#o.store.put(k, t)
    const version = body.dryRun ? this.version : await this.settle()
    sendJson(res, 200, { applied: results, dryRun: body.dryRun, version, warnings: r.warnings })
  }

  async #getPolicies(url: URL, res: http.ServerResponse): Promise<void> {
    const kind = url.searchParams.get('kind')
    const ns = url.searchParams.get('namespace')
    const name = url.searchParams.get('name')
    const items = []
    for (const [key, text] of await this.#policySources()) {
      let doc: { kind?: string; metadata?: { name?: string; namespace?: string } }
      try {
        doc = parseYaml(text) as typeof doc
      } catch {
        continue
      }
      if (kind && doc.kind?.toLowerCase() !== kind.toLowerCase()) continue
      if (ns && doc.metadata?.namespace !== ns) continue
      if (name && doc.metadata?.name !== name) continue
      items.push({ key, kind: doc.kind, namespace: doc.metadata?.namespace, name: doc.metadata?.name, doc })
    }
    sendJson(res, 200, { items, version: this.version })
  }

  /** What `get` and `check --server` read: the store's files, or the feed's valid set (what sidecars enforce). */
  async #policySources(): Promise<Map<string, string>> {
    if (!this.#feed) return this.#o.store.list('policies/')
    return new Map(this.#policies.map((d) => [`${this.#feed!.name}:${policyKey(d.kind, d.metadata.namespace ?? 'default', d.metadata.name)}`, stringifyYaml(d)]))
  }

  /** The live policy set as sources, for `remora check --server` (same input as the offline check). */
  async #getSources(res: http.ServerResponse): Promise<void> {
    const sources = [...(await this.#policySources())].map(([source, text]) => ({ source, text }))
    sendJson(res, 200, { sources, version: this.version, trustDomain: this.trustDomain, rootNamespace: this.rootNamespace })
  }

  async #deletePolicy(path: string, res: http.ServerResponse): Promise<void> {
    this.#refuseWhenFed()
    const parts = path.slice('/v1/policies/'.length).split('/').map(decodeURIComponent)
    if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9.-]+$/.test(p))) throw new CpError('REMORA_ERR_CP_BAD_REQUEST', 'expected /v1/policies/<Kind>/<namespace>/<name>')
    const [kind, ns, name] = parts as [string, string, string]
    // Kinds are case-insensitive on the CLI: find the stored one.
    const entries = await this.#o.store.list(`policies/${ns}/`)
    const key = [...entries.keys()].find((k) => k.toLowerCase() === policyKey(kind, ns, name).toLowerCase())
    if (!key || !(await this.#o.store.delete(key))) throw new CpError('REMORA_ERR_CP_NOT_FOUND', `${kind} ${ns}/${name}`)
    sendJson(res, 200, { deleted: { kind: key.split('/')[2], namespace: ns, name }, version: await this.settle() })
  }

  async #token(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = parseBody(TokenBody, await readJson(req))
    const t = await this.createJoinToken(body.namespace, body.serviceAccount, body.ttlSeconds * 1000)
    this.deps.logger.info({ event: 'join_token_created', sub: t.spiffeId, expiresAt: t.expiresAt.toISOString() }, 'join token created')
    sendJson(res, 200, { token: t.token, spiffeId: t.spiffeId, expiresAt: t.expiresAt.toISOString() })
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const t of this.#timers) clearTimeout(t)
    if (this.#servingTimer) clearTimeout(this.#servingTimer)
    if (this.#rebuildTimer) clearTimeout(this.#rebuildTimer)
    this.#hub.close()
    for (const w of this.#watches) await w.close().catch(() => {})
    if (this.#server?.listening) {
      await new Promise<void>((r) => {
        this.#server.close(() => r())
        this.#server.closeAllConnections()
      })
    }
    await this.#flushWrites()
  }
}
