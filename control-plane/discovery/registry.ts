import type { ControlPlaneDeps } from '../deps.js'
import type { ClusterPort } from '../../proxy/snapshot/index.js'
import type { SnapshotCluster } from '../push/index.js'
import type { Store } from '../store/index.js'
import { clustersFrom, type Registration, type ReplicaHeartbeat } from './registrations.js'

/** One endpoint from the platform, with what its Service declares (every endpoint of a Service carries the same). */
export interface PlatformEndpoint {
  readonly service: string
  readonly namespace: string
  readonly address: string
  readonly serviceAccount: string
  readonly identity: string
  /** The Service's virtual IPs (Kubernetes ClusterIPs). */
  readonly addresses?: readonly string[]
  /** The Service's TCP ports and their declared protocols. */
  readonly ports?: readonly ClusterPort[]
}

/** Endpoints from the platform (Kubernetes EndpointSlices of injected pods, and their Services). */
export interface DiscoveryFeed {
  start(ctx: {
    readonly trustDomain: string
    readonly onEndpoints: (endpoints: PlatformEndpoint[]) => void
  }): Promise<{ close(): Promise<void> }>
}

export interface EndpointRegistryOptions {
  readonly store: Store
  readonly replicaId: string
  readonly graceMs: number
  /**
   * How often this replica heart-beats (and re-reads every replica's heartbeat). Its view of the
   * others is called current while its last read is at most two periods old.
   */
  readonly heartbeatMs: number
  /** Where this replica's own writes go (registrations): the coalesced writer. */
  readonly write: (key: string, value: string | null) => void
  /** The address of the stream this replica holds for a node, if any. */
  readonly heldAddress: (node: string) => string | undefined
  /** Called whenever the endpoints may have changed (a debounced rebuild follows). */
  readonly onChange: () => void
}

/**
 * Every replica's registrations and heartbeats, kept in step with the store, plus the platform's
 * endpoints; `clusters()` turns them into the clusters of the next snapshot.
 */
export class EndpointRegistry {
  readonly #o: EndpointRegistryOptions
  readonly #deps: ControlPlaneDeps
  readonly #regs = new Map<string, Registration>()
  readonly #replicas = new Map<string, ReplicaHeartbeat>()
  /** The discovery feed's endpoints, as registrations held by this replica (live while it heart-beats). */
  #platform: Registration[] = []
  /** Since when this replica sees the store again: its start, or the end of a spell it could not read it. */
  #sightSince: number
  /** The last time every heartbeat was read from the store (a list, not the watch). */
  #readAt: number

  constructor(o: EndpointRegistryOptions, deps: ControlPlaneDeps) {
    this.#o = o
    this.#deps = deps
    this.#sightSince = this.#readAt = deps.clock.now()
  }

  get replicas(): ReadonlyMap<string, ReplicaHeartbeat> {
    return this.#replicas
  }

  get(node: string): Registration | undefined {
    return this.#regs.get(node)
  }

  /** Starts the store watches, then reads what is there. */
  async start(): Promise<{ close(): Promise<void> }[]> {
    const { store } = this.#o
    const watches = [
      await store.watch('registrations/', (e) => {
        const node = e.key.slice('registrations/'.length)
        // This replica holds the live stream of that sidecar: its own registration is the truth,
        // and a store event for it can only be an echo, possibly stale (a file-store scan that read
        // a file mid-update), which must not drop a connected endpoint from every snapshot.
        const held = this.#o.heldAddress(node)
        if (held !== undefined) {
          const local = this.#regs.get(node)
          if (local?.connected && local.address === held) return
        }
        if (e.value === null) this.#regs.delete(node)
        else this.#regs.set(node, JSON.parse(e.value) as Registration)
        this.#o.onChange()
      }),
      await store.watch('replicas/', (e) => {
        const id = e.key.slice('replicas/'.length)
        if (e.value === null) this.#replicas.delete(id)
        else this.#replicas.set(id, JSON.parse(e.value) as ReplicaHeartbeat)
      }),
    ]
    for (const [k, v] of await store.list('registrations/')) this.#regs.set(k.slice('registrations/'.length), JSON.parse(v) as Registration)
    await this.refreshReplicas()
    return watches
  }

  /**
   * Reads every replica's heartbeat from the store. The watch alone is not enough: an etcd client
   * re-establishes a broken watch after a backoff that grows to 30 s, and meanwhile the others'
   * heartbeats would seem to stop and their sidecars would leave every cluster (404 NR for a
   * service that is there: the etcd leader-loss fault). Called on every heartbeat tick.
   */
  async refreshReplicas(): Promise<void> {
    const listed = await this.#o.store.list('replicas/')
    const now = this.#deps.clock.now()
    if (now - this.#readAt > this.#staleAfter()) this.#sightSince = now
    this.#readAt = now
    const ids = new Set<string>()
    for (const [k, v] of listed) {
      const id = k.slice('replicas/'.length)
      const hb = JSON.parse(v) as ReplicaHeartbeat
      const known = this.#replicas.get(id)
      ids.add(id)
      // The watch may have delivered a newer one meanwhile: the newest wins.
      if (!known || Date.parse(hb.lastSeen) >= Date.parse(known.lastSeen)) this.#replicas.set(id, hb)
    }
    for (const id of this.#replicas.keys()) if (!ids.has(id) && id !== this.#o.replicaId) this.#replicas.delete(id)
  }

  #staleAfter(): number {
    return 2 * this.#o.heartbeatMs
  }

  /** A sidecar's stream opened or closed on this replica. */
  register(reg: Registration): void {
    this.#regs.set(reg.node, reg)
    this.#o.write(`registrations/${reg.node}`, JSON.stringify(reg))
    this.#o.onChange()
  }

  /** The platform feed's current endpoints (replaces the previous set). */
  setPlatformEndpoints(eps: readonly PlatformEndpoint[]): void {
    this.#platform = eps.map((e) => ({
      node: `platform:${e.address}`,
      identity: e.identity,
      namespace: e.namespace,
      serviceAccount: e.serviceAccount,
      service: e.service,
      labels: {},
      address: e.address,
      replica: this.#o.replicaId,
      connected: true,
      disconnectedAt: null,
      ...(e.addresses ? { addresses: e.addresses } : {}),
      ...(e.ports ? { ports: e.ports } : {}),
    }))
    this.#o.onChange()
  }

  /** Writes this replica's heartbeat, then re-reads everyone's (see refreshReplicas). */
  async heartbeat(address: string): Promise<void> {
    const hb: ReplicaHeartbeat = { id: this.#o.replicaId, address, lastSeen: new Date(this.#deps.clock.now()).toISOString() }
    this.#replicas.set(this.#o.replicaId, hb)
    await this.#o.store.put(`replicas/${this.#o.replicaId}`, JSON.stringify(hb))
    await this.refreshReplicas()
  }

  /**
   * Heartbeats are judged by what this replica could see, and fail static when it cannot see:
   * - A control plane that (re)starts after a long outage finds registrations held by replicas
   *   whose heartbeats are old: itself before the restart, or a replica that died meanwhile. Their
   *   sidecars are reconnecting right now; dropping their endpoints at once would answer callers
   *   404 NR for a service that is there. So for the first grace period after start those
   *   heartbeats count as this start: an endpoint leaves only when it has not come back within the
   *   usual grace. The same holds after a spell this replica could not read the store.
   * - While it cannot read the store (its last read of the heartbeats is older than two heartbeat
   *   periods), time stops for heartbeats at that read plus two periods: no replica is declared
   *   dead on evidence this one could not have seen. Istio and Envoy do the same with a lost
   *   control plane: keep the last known endpoints rather than drop them.
   */
  clusters(): SnapshotCluster[] {
    return clustersFrom([...this.#regs.values(), ...this.#platform], this.#judged(), this.#deps.clock.now(), this.#o.graceMs)
  }

  /** The heartbeats as this replica may judge them now (see clusters()). */
  #judged(): ReadonlyMap<string, ReplicaHeartbeat> {
    const now = this.#deps.clock.now()
    const blindFor = Math.max(0, now - (this.#readAt + this.#staleAfter()))
    const justSeeing = now - this.#sightSince < this.#o.graceMs
    if (!justSeeing && blindFor === 0) return this.#replicas
    const out = new Map<string, ReplicaHeartbeat>()
    for (const [id, hb] of this.#replicas) {
      let t = Date.parse(hb.lastSeen)
      if (justSeeing && t < this.#sightSince) t = this.#sightSince
      t += blindFor
      out.set(id, t === Date.parse(hb.lastSeen) ? hb : { ...hb, lastSeen: new Date(t).toISOString() })
    }
    return out
  }

  /** Replicas whose heartbeat is recent (two grace periods), judged as clusters() judges them. */
  liveReplicas(): ReplicaHeartbeat[] {
    const now = this.#deps.clock.now()
    return [...this.#judged().entries()].filter(([, r]) => now - Date.parse(r.lastSeen) < this.#o.graceMs * 2).map(([id]) => this.#replicas.get(id)!)
  }

}
