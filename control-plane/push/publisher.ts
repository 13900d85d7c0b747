import { createHash } from 'node:crypto'
import type { PolicyDocument, PolicyIssue } from '../../proxy/policy/index.js'
import { QuarantineEntrySchema, type OutboundTrafficPolicy, type QuarantineEntry } from '../../proxy/snapshot/index.js'
import type { SigningKey } from '../ca/index.js'
import type { ControlPlaneDeps } from '../deps.js'
import type { Store } from '../store/index.js'
import { createPolicySetValidator, type PolicyFeed } from './policies.js'
import { buildSnapshot, signSnapshot, type SignedSnapshot, type SnapshotCluster, type SnapshotPayload } from './snapshot.js'
import type { PushHub } from './streams.js'

export interface PublisherOptions {
  readonly store: Store
  readonly trustDomain: string
  readonly rootNamespace: string
  readonly hub: PushHub
  /** Policies from a feed instead of the store's policies/ (then the store's are never read). */
  readonly feed?: PolicyFeed
  /** Read at each rebuild: what the snapshot is made of besides policies. */
  readonly clusters: () => SnapshotCluster[]
  readonly trustBundle: () => string
  /** Mesh-wide outbound traffic policy (absent: ALLOW_ANY); a sidecar's own setting wins. */
  readonly outboundTrafficPolicy?: OutboundTrafficPolicy
  readonly signingKey: () => SigningKey
  /** Discovery changes are pushed after this quiet period, and at most debounceMaxMs after the first. */
  readonly debounceMs: number
  readonly debounceMaxMs: number
  /** A new version went out (metrics, events). */
  readonly onPublish: (snap: SignedSnapshot) => void
}

export type ChangeKind = 'config' | 'discovery'

/**
 * The snapshot publisher: on a change it re-reads what changed, builds the snapshot, signs it and
 * writes it to every stream when its version is new. Config changes go out within 5 ms; discovery
 * changes are debounced (Istio's PILOT_DEBOUNCE_AFTER/MAX), so a fleet that reconnects at once gets
 * a few snapshots, not one per sidecar to every sidecar. Rebuilds are serialized. An invalid
 * policy set in the store is never half-applied: the last good set stays and the errors are kept.
 */
export class Publisher {
  readonly #o: PublisherOptions
  readonly #deps: ControlPlaneDeps
  readonly #validate: ReturnType<typeof createPolicySetValidator>
  #current: SignedSnapshot | null = null
  #policies: PolicyDocument[] = []
  #policyErrors: PolicyIssue[] = []
  #policiesDirty: boolean
  #quarantine: QuarantineEntry[] = []
  #quarantineDirty = true
  #timer: NodeJS.Timeout | null = null
  #timerAt = 0
  #configQueued = false
  #discoveryFirst = 0
  #rebuilding: Promise<void> = Promise.resolve()
  #publishedAt = 0
  #closed = false

  constructor(o: PublisherOptions, deps: ControlPlaneDeps) {
    this.#o = o
    this.#deps = deps
    this.#validate = createPolicySetValidator(o)
    // A feed delivers its set before the first snapshot: sidecars never see an empty set while it syncs.
    this.#policiesDirty = o.feed === undefined
  }

  get current(): SignedSnapshot | null {
    return this.#current
  }
  get version(): string | null {
    return this.#current?.version ?? null
  }
  /** The policies in force (the last valid set). */
  get policies(): readonly PolicyDocument[] {
    return this.#policies
  }
  /** Why the store's (or the feed's) latest set was not taken, if it was not. */
  get policyErrors(): readonly PolicyIssue[] {
    return this.#policyErrors
  }
  /** When the current version was published (clock ms), for ACK latency. */
  get publishedAt(): number {
    return this.#publishedAt
  }

  /** Quarantined identities in force (sorted by identity). */
  get quarantine(): readonly QuarantineEntry[] {
    return this.#quarantine
  }

  /** The store's quarantine/ changed. */
  quarantineChanged(): void {
    this.#quarantineDirty = true
    this.queue('config')
  }

  /** The store's policies/ changed. */
  policiesChanged(): void {
    this.#policiesDirty = true
    this.queue('config')
  }

  /** The feed delivered a new set. */
  setPolicies(policies: PolicyDocument[], errors: PolicyIssue[]): void {
    this.#policies = policies
    this.#policyErrors = errors
    this.queue('config')
  }

  /** Config changes rebuild within 5 ms; discovery changes are debounced. */
  queue(kind: ChangeKind = 'config'): void {
    if (this.#closed) return
    const now = this.#deps.clock.now()
    let at: number
    if (kind === 'config') at = now + 5
    else {
      if (this.#discoveryFirst === 0) this.#discoveryFirst = now
      at = Math.min(now + this.#o.debounceMs, this.#discoveryFirst + this.#o.debounceMaxMs)
    }
    if (this.#timer) {
      // A queued config rebuild comes sooner and covers discovery; a later config change is covered by the queued one.
      if (this.#configQueued || (kind === 'config' && at >= this.#timerAt)) {
        if (kind === 'config') this.#configQueued = true
        return
      }
      clearTimeout(this.#timer)
    }
    if (kind === 'config') this.#configQueued = true
    this.#timerAt = at
    this.#timer = setTimeout(
      () => {
        this.#timer = null
        this.#configQueued = false
        this.#discoveryFirst = 0
        void this.rebuild()
      },
      Math.max(0, at - now),
    )
  }

  /** Re-reads what changed, builds the snapshot, and publishes it when its version is new. Serialized. */
  rebuild(): Promise<void> {
    this.#rebuilding = this.#rebuilding.then(async () => {
      if (this.#closed) return
      try {
        if (this.#policiesDirty) {
          this.#policiesDirty = false
          await this.#loadPolicies()
        }
        if (this.#quarantineDirty) {
          this.#quarantineDirty = false
          await this.#loadQuarantine()
        }
        const payload = buildSnapshot({ trustDomain: this.#o.trustDomain, rootNamespace: this.#o.rootNamespace, policies: this.#policies, clusters: this.#o.clusters(), trustBundle: this.#o.trustBundle(), ...(this.#o.outboundTrafficPolicy ? { outboundTrafficPolicy: this.#o.outboundTrafficPolicy } : {}), quarantine: this.#quarantine })
        if (payload.version === this.#current?.version) return
        await this.#publish(payload)
      } catch (err) {
        this.#deps.logger.error({ event: 'rebuild_failed', error: (err as Error).message }, 'cannot build a snapshot; keeping the current one')
      }
    })
    return this.#rebuilding
  }

  /** Waits for pending rebuilds after re-reading the policies (`apply` answers with the new version). */
  async settle(): Promise<string | null> {
    if (!this.#o.feed) this.#policiesDirty = true
    this.#quarantineDirty = true
    await this.rebuild()
    return this.version
  }

  /** quarantine/<sha256 of the identity> → one entry each; an unreadable one is skipped and logged (never half a list). */
  async #loadQuarantine(): Promise<void> {
    const out: QuarantineEntry[] = []
    for (const [key, v] of await this.#o.store.list('quarantine/')) {
      try {
        const r = QuarantineEntrySchema.safeParse(JSON.parse(v))
        if (r.success) out.push(r.data)
        else this.#deps.logger.error({ event: 'quarantine_entry_invalid', key }, 'a quarantine entry in the store is invalid; ignored')
      } catch {
        this.#deps.logger.error({ event: 'quarantine_entry_invalid', key }, 'a quarantine entry in the store is not JSON; ignored')
      }
    }
    this.#quarantine = out.sort((a, b) => (a.identity < b.identity ? -1 : a.identity > b.identity ? 1 : 0))
  }

  async #loadPolicies(): Promise<void> {
    if (this.#o.feed) return // the feed pushes its set; the store's policies/ are not ours to read
    const r = this.#validate(await this.#o.store.list('policies/'))
    if (r.errors.length) {
      // Never half-apply: an invalid edit made behind the API (GitOps) keeps the last good set.
      this.#policyErrors = r.errors
      this.#deps.logger.error(
        { event: 'store_policies_rejected', errors: r.errors.map((e) => `${e.source ?? ''} ${e.path}: ${e.message} (${e.code})`) },
        'policies in the store are invalid; keeping the last good set',
      )
      return
    }
    this.#policyErrors = []
    this.#policies = r.policies
  }

  async #publish(payload: SnapshotPayload): Promise<void> {
    const snap = await signSnapshot(payload, this.#o.signingKey())
    this.#current = snap
    this.#publishedAt = this.#deps.clock.now()
    const n = this.#o.hub.broadcast(snap)
    this.#o.onPublish(snap)
    this.#deps.logger.info({ event: 'snapshot_published', version: snap.version, policies: payload.policies.length, clusters: payload.clusters.length, streams: n }, 'snapshot published')
  }

  /**
   * Test seam: signs and pushes an arbitrary payload (for example one the sidecars must NACK),
   * bypassing validation. Not reachable over the API.
   */
  async publishRaw(payload: Omit<SnapshotPayload, 'version'> & { version?: string }): Promise<string> {
    const version = payload.version ?? createHash('sha256').update(JSON.stringify(payload)).digest('hex').slice(0, 16)
    await this.#publish({ ...payload, version } as SnapshotPayload)
    return version
  }

  close(): void {
    this.#closed = true
    if (this.#timer) clearTimeout(this.#timer)
  }
}
