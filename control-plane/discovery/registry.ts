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
  #startedAt: number

  constructor(o: EndpointRegistryOptions, deps: ControlPlaneDeps) {
    this.#o = o
    this.#deps = deps
    this.#startedAt = deps.clock.now()
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
    for (const [k, v] of await store.list('replicas/')) this.#replicas.set(k.slice('replicas/'.length), JSON.parse(v) as ReplicaHeartbeat)
    return watches
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

  async heartbeat(address: string): Promise<void> {
    const hb: ReplicaHeartbeat = { id: this.#o.replicaId, address, lastSeen: new Date(this.#deps.clock.now()).toISOString() }
    this.#replicas.set(this.#o.replicaId, hb)
    await this.#o.store.put(`replicas/${this.#o.replicaId}`, JSON.stringify(hb))
  }

  /** Replicas whose heartbeat is recent (two grace periods). */
  liveReplicas(): ReplicaHeartbeat[] {
    const now = this.#deps.clock.now()
    return [...this.#replicas.values()].filter((r) => now - Date.parse(r.lastSeen) < this.#o.graceMs * 2)
  }

  /**
   * A control plane that (re)starts after a long outage finds registrations held by replicas whose
   * heartbeats are old: itself before the restart, or a replica that died meanwhile. Their sidecars
   * are reconnecting right now; dropping their endpoints at once would answer callers 404 NR for a
   * service that is there. So for the first grace period after start those heartbeats count as this
   * start: an endpoint leaves only when it has not come back within the usual grace.
   */
  clusters(): SnapshotCluster[] {
    const now = this.#deps.clock.now()
    let replicas: ReadonlyMap<string, ReplicaHeartbeat> = this.#replicas
    if (now - this.#startedAt < this.#o.graceMs) {
      const floor = new Date(this.#startedAt).toISOString()
      replicas = new Map([...this.#replicas].map(([id, hb]) => [id, Date.parse(hb.lastSeen) < this.#startedAt ? { ...hb, lastSeen: floor } : hb]))
    }
    return clustersFrom([...this.#regs.values(), ...this.#platform], replicas, now, this.#o.graceMs)
  }
}
