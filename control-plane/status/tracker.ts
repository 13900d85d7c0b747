import type { ControlPlaneDeps } from '../deps.js'
import type { Registration, ReplicaHeartbeat } from '../discovery/index.js'
import type { Store } from '../store/index.js'
import type { CoalescedWriter } from './writer.js'

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

/** The answer of `GET /v1/status` (and `remora status`). */
export interface StatusReport {
  version: string | null
  replica: string
  replicas: ReplicaHeartbeat[]
  policyErrors: string[]
  sidecars: SidecarStatus[]
  /** Quarantined identities in force, with who did it, why and since when. */
  quarantine: { identity: string; reason: string; by: string; since: string }[]
}

export interface StatusTrackerOptions {
  readonly store: Store
  readonly writer: CoalescedWriter
  readonly replicaId: string
  readonly graceMs: number
  /** What the other modules know at read time: replicas' heartbeats and registrations. */
  readonly replicas: () => ReadonlyMap<string, ReplicaHeartbeat>
  readonly registration: (node: string) => Registration | undefined
}

/** How long after a sidecar (or a replica) went silent it leaves the status: 20 grace periods. */
const GONE_AFTER_GRACES = 20
/** Status reaches the store at most this often. */
const FLUSH_MS = 200

/**
 * This replica's view of its sidecars (streams, pushed/ACKed versions, NACKs, certificate expiry),
 * written to the store as 16 bucket documents per replica (`status/<replica>/<first hex digit of
 * the node id>`): a push and its ACK at a thousand sidecars are 16 writes, not 2,000. `read()`
 * merges every replica's documents into one entry per sidecar.
 */
export class StatusTracker {
  readonly #o: StatusTrackerOptions
  readonly #deps: ControlPlaneDeps
  readonly #status = new Map<string, SidecarStatus>()
  readonly #dirty = new Set<string>()
  #timer: NodeJS.Timeout | null = null

  constructor(o: StatusTrackerOptions, deps: ControlPlaneDeps) {
    this.#o = o
    this.#deps = deps
  }

  get(node: string): SidecarStatus | undefined {
    return this.#status.get(node)
  }

  /** A stream opened: the sidecar's entry is (re)set. */
  set(st: SidecarStatus): void {
    this.#status.set(st.node, st)
    this.#markDirty(st.node)
  }

  update(node: string, patch: Partial<SidecarStatus>): void {
    const cur = this.#status.get(node)
    if (!cur) return
    this.#status.set(node, { ...cur, ...patch })
    this.#markDirty(node)
  }

  #markDirty(node: string): void {
    this.#dirty.add(node[0]!)
    this.#timer ??= setTimeout(() => this.flush(), FLUSH_MS)
  }

  /** Hands the dirty buckets to the writer now (close and `read()` call it; otherwise a timer does). */
  flush(): void {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    if (this.#dirty.size === 0) return
    const now = this.#deps.clock.now()
    const buckets = new Map<string, SidecarStatus[]>([...this.#dirty].map((b) => [b, []]))
    this.#dirty.clear()
    for (const [node, st] of this.#status) {
      // Long gone sidecars leave the status (as `status` stops showing them).
      if (!st.connected && st.disconnectedAt && now - Date.parse(st.disconnectedAt) > this.#o.graceMs * GONE_AFTER_GRACES) {
        this.#status.delete(node)
        continue
      }
      buckets.get(node[0]!)?.push(st)
    }
    const { replicaId } = this.#o
    for (const [b, list] of buckets) this.#o.writer.write(`status/${replicaId}/${b}`, list.length ? JSON.stringify({ replica: replicaId, at: new Date(now).toISOString(), sidecars: list }) : null)
  }

  /** Connected sidecars of this replica whose ACKed version is not `version`. */
  outOfSync(nodes: Iterable<{ node: string }>, version: string | null): number {
    let n = 0
    for (const s of nodes) if (this.#status.get(s.node)?.versionAcked !== version) n++
    return n
  }

  /** Every replica's view merged: one entry per sidecar, where it is connected now. */
  async read(): Promise<SidecarStatus[]> {
    this.flush()
    await this.#o.writer.flush()
    const now = this.#deps.clock.now()
    const { graceMs, replicaId } = this.#o
    const replicas = this.#o.replicas()
    const all = await this.#o.store.list('status/')
    const byNode = new Map<string, SidecarStatus>()
    const since = (s: SidecarStatus): number => Math.max(Date.parse(s.connectedSince ?? '') || 0, Date.parse(s.disconnectedAt ?? '') || 0)
    for (const [key, v] of all) {
      let doc: { replica?: string; at?: string; sidecars?: SidecarStatus[] } & Partial<SidecarStatus>
      try {
        doc = JSON.parse(v) as typeof doc
      } catch {
        continue // a torn or foreign value: status is rebuilt by the running system
      }
      if (typeof doc.replica === 'string' && doc.replica !== replicaId && typeof doc.at === 'string') {
        // A replica silent for long (a restart under a new id): its sidecars are elsewhere or gone.
        // Both its documents and its heartbeat must be old: a replica that just started may not
        // have reached this one's watch yet.
        const hb = replicas.get(doc.replica)
        const stale = (t: string): boolean => now - Date.parse(t) > graceMs * GONE_AFTER_GRACES
        if (stale(doc.at) && (!hb || stale(hb.lastSeen))) {
          this.#o.writer.write(key, null)
          continue
        }
      }
      // A bucket document, or one sidecar's (the layout before buckets).
      for (const s of Array.isArray(doc.sidecars) ? doc.sidecars : [doc as SidecarStatus]) {
        if (typeof s?.node !== 'string') continue
        // A stream held by a replica that stopped heart-beating is not connected any more.
        const hb = replicas.get(s.replica)
        const alive = hb !== undefined && now - Date.parse(hb.lastSeen) < graceMs * 2
        if (s.connected && !alive) s.connected = false
        const prev = byNode.get(s.node)
        if (prev && ((prev.connected && !s.connected) || (prev.connected === s.connected && since(prev) >= since(s)))) continue
        byNode.set(s.node, s)
      }
    }
    const sidecars: SidecarStatus[] = []
    for (const s of byNode.values()) {
      const reg = this.#o.registration(s.node)
      if (!s.connected && reg?.disconnectedAt && now - Date.parse(reg.disconnectedAt) > graceMs * GONE_AFTER_GRACES) continue
      sidecars.push(s)
    }
    sidecars.sort((a, b) => (a.identity === b.identity ? (a.address < b.address ? -1 : 1) : a.identity < b.identity ? -1 : 1))
    return sidecars
  }

  close(): void {
    this.flush()
  }
}
