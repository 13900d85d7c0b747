import type { ClusterPort } from '../../proxy/snapshot/index.js'
import type { SnapshotCluster } from '../push/index.js'

/** What a sidecar tells the control plane about itself when its stream opens. */
export interface Registration {
  readonly node: string
  readonly identity: string
  readonly namespace: string
  readonly serviceAccount: string
  readonly service: string
  readonly labels: Readonly<Record<string, string>>
  /** The sidecar's inbound listener, host:port: the endpoint other sidecars dial. */
  readonly address: string
  /** The replica that holds (or last held) its stream. */
  readonly replica: string
  readonly connected: boolean
  readonly disconnectedAt: string | null
  /** The service's virtual IPs, when the platform knows them (Kubernetes ClusterIPs); sidecars register none. */
  readonly addresses?: readonly string[]
  /** The service's ports, when the platform knows them (a Kubernetes Service's TCP ports). */
  readonly ports?: readonly ClusterPort[]
}

export interface ReplicaHeartbeat {
  readonly id: string
  readonly address: string
  readonly lastSeen: string
}

/**
 * Is this endpoint still served? Connected to a replica that is alive (heartbeat within the grace
 * period), or disconnected for less than the grace period. A replica that died counts as the
 * moment of its last heartbeat, so its sidecars expire too unless they fail over.
 */
export function isLive(r: Registration, replicas: ReadonlyMap<string, ReplicaHeartbeat>, now: number, graceMs: number): boolean {
  if (r.connected) {
    const hb = replicas.get(r.replica)
    if (!hb) return false
    return now - Date.parse(hb.lastSeen) < graceMs * 2
  }
  return r.disconnectedAt !== null && now - Date.parse(r.disconnectedAt) < graceMs
}

/**
 * `<service>.<namespace>` clusters from live registrations; a cluster with no live endpoint is left
 * out (NR). The VIPs and ports come from the registrations that carry them (the platform's, all
 * alike for one Service): addresses in the order first seen, ports by service port, first wins.
 */
export function clustersFrom(regs: readonly Registration[], replicas: ReadonlyMap<string, ReplicaHeartbeat>, now: number, graceMs: number): SnapshotCluster[] {
  const by = new Map<string, { service: string; namespace: string; endpoints: Set<string>; identities: Set<string>; addresses: Set<string>; ports: Map<number, ClusterPort> | null }>()
  for (const r of regs) {
    if (!isLive(r, replicas, now, graceMs)) continue
    const name = `${r.service}.${r.namespace}`
    let c = by.get(name)
    if (!c) by.set(name, (c = { service: r.service, namespace: r.namespace, endpoints: new Set(), identities: new Set(), addresses: new Set(), ports: null }))
    c.endpoints.add(r.address)
    c.identities.add(r.identity)
    for (const a of r.addresses ?? []) c.addresses.add(a)
    if (r.ports) {
      c.ports ??= new Map()
      for (const p of r.ports) if (!c.ports.has(p.port)) c.ports.set(p.port, p)
    }
  }
  return [...by.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, c]) => ({
      name,
      hosts: [c.service, `${c.service}.${c.namespace}`, `${c.service}.${c.namespace}.svc.cluster.local`],
      endpoints: [...c.endpoints].sort(),
      identities: [...c.identities].sort(),
      ...(c.addresses.size ? { addresses: [...c.addresses] } : {}),
      ...(c.ports ? { ports: [...c.ports.values()].map((p) => ({ ...p })) } : {}),
    }))
}
