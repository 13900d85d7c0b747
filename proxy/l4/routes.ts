import { isIP } from 'node:net'
import type { ClusterPort, PortProtocol } from '../snapshot/index.js'
import type { OriginalDst } from '../pipeline/index.js'
import { canonicalIp } from '../engines/common/index.js'
import { NO_QUARANTINE, type QuarantineSet, type WorkloadLabels } from '../stages/index.js'

// The connection-level routing table, built once per config: service VIPs and endpoint IPs →
// cluster (by original destination), hosts → cluster (by SNI), and the outbound traffic policy
// for destinations outside the mesh.

export const OUTBOUND_POLICY_MODES = ['ALLOW_ANY', 'REGISTRY_ONLY'] as const
export type OutboundPolicyMode = (typeof OUTBOUND_POLICY_MODES)[number]

export interface OutboundPolicy {
  readonly mode: OutboundPolicyMode
  /** Under REGISTRY_ONLY: external hosts still allowed, by SNI (TLS) or Host (HTTP): exact, or `*.example.com`. */
  readonly allowedHosts: readonly string[]
}

export const DEFAULT_OUTBOUND_POLICY: OutboundPolicy = { mode: 'ALLOW_ANY', allowedHosts: [] }

export interface L4Cluster {
  readonly name: string
  readonly labels: WorkloadLabels
  readonly identities: readonly string[]
  /** Sidecar inbound addresses (host:port). */
  readonly endpoints: readonly string[]
  readonly ports: ReadonlyMap<number, ClusterPort>
  readonly connectTimeoutMs: number
  next: number
}

export interface L4Match {
  readonly cluster: L4Cluster
  /** The workload port to ask for (the service port's targetPort), or null: the workload's default. */
  readonly targetPort: number | null
  /** The declared protocol of that port, or null (detect). */
  readonly protocol: PortProtocol | null
}

export interface L4Table {
  readonly byName: ReadonlyMap<string, L4Cluster>
  readonly byIp: ReadonlyMap<string, L4Cluster>
  readonly byHost: ReadonlyMap<string, L4Cluster>
  readonly policy: OutboundPolicy
  readonly allowedExact: ReadonlySet<string>
  readonly allowedSuffixes: readonly string[]
  /** Quarantined identities: TCP to a cluster whose every identity is one is refused; a quarantined workload connects nowhere. */
  readonly quarantine: QuarantineSet
}

export interface L4ClusterInput {
  readonly name: string
  readonly hosts: readonly string[]
  readonly endpoints: readonly string[]
  readonly identities: readonly string[]
  readonly addresses?: readonly string[] | undefined
  readonly ports?: readonly ClusterPort[] | undefined
  readonly connectTimeoutMs: number
  readonly labels: WorkloadLabels
}


function hostOf(endpoint: string): string {
  if (endpoint.startsWith('[')) return endpoint.slice(1, endpoint.indexOf(']'))
  const i = endpoint.lastIndexOf(':')
  return i === -1 ? endpoint : endpoint.slice(0, i)
}

// 127.0.0.1 and ::1 are every cluster's address on a local mesh; other loopback addresses can be a pod's.
const isLoopback = (ip: string): boolean => ip === '127.0.0.1' || ip === '::1'

export function buildL4Table(clusters: readonly L4ClusterInput[], policy: OutboundPolicy, quarantine: QuarantineSet = NO_QUARANTINE): L4Table {
  const byName = new Map<string, L4Cluster>()
  const byIp = new Map<string, L4Cluster>()
  const byHost = new Map<string, L4Cluster>()
  for (const c of clusters) {
    const ports = new Map<number, ClusterPort>()
    for (const p of c.ports ?? []) ports.set(p.port, p)
    const l4: L4Cluster = { name: c.name, labels: c.labels, identities: c.identities, endpoints: c.endpoints, ports, connectTimeoutMs: c.connectTimeoutMs, next: 0 }
    byName.set(c.name, l4)
    for (const a of c.addresses ?? []) if (!byIp.has(canonicalIp(a))) byIp.set(canonicalIp(a), l4)
    // A pod dialled directly (headless service): its IP is an endpoint's. Loopback endpoints (a
    // local mesh) are shared by every cluster and say nothing.
    for (const e of c.endpoints) {
      const ip = canonicalIp(hostOf(e))
      if (isIP(ip) !== 0 && !isLoopback(ip) && !byIp.has(ip)) byIp.set(ip, l4)
    }
    for (const h of c.hosts) if (!byHost.has(h.toLowerCase())) byHost.set(h.toLowerCase(), l4)
  }
  const allowedExact = new Set<string>()
  const allowedSuffixes: string[] = []
  for (const h of policy.allowedHosts) {
    const l = h.toLowerCase()
    if (l.startsWith('*.')) allowedSuffixes.push(l.slice(1))
    else allowedExact.add(l)
  }
  return { byName, byIp, byHost, policy, allowedExact, allowedSuffixes, quarantine }
}

/** The cluster an original destination belongs to: a VIP (port mapped through the service's ports) or an endpoint IP. */
export function matchDestination(t: L4Table, od: OriginalDst): L4Match | null {
  const ip = canonicalIp(od.address)
  const cluster = t.byIp.get(ip)
  if (!cluster) return null
  const p = cluster.ports.get(od.port)
  if (p) return { cluster, targetPort: p.targetPort ?? p.port, protocol: p.protocol ?? null }
  return { cluster, targetPort: od.port, protocol: null }
}

/** A cluster by name, on one of its service ports (null: its only declared port, else the workload's default). */
export function matchName(t: L4Table, name: string, port: number | null): L4Match | null {
  const cluster = t.byName.get(name)
  if (!cluster) return null
  const p = port !== null ? cluster.ports.get(port) : cluster.ports.size === 1 ? [...cluster.ports.values()][0] : undefined
  if (p) return { cluster, targetPort: p.targetPort ?? p.port, protocol: p.protocol ?? null }
  return { cluster, targetPort: port, protocol: null }
}

/** The cluster a TLS SNI (or host) names, with the port dialled if known. */
export function matchHost(t: L4Table, host: string, port: number | null): L4Match | null {
  const h = host.toLowerCase()
  const cluster = (port !== null ? t.byHost.get(`${h}:${port}`) : undefined) ?? t.byHost.get(h)
  if (!cluster) return null
  const p = port !== null ? cluster.ports.get(port) : undefined
  return { cluster, targetPort: p ? (p.targetPort ?? p.port) : port, protocol: p?.protocol ?? null }
}

/** Under REGISTRY_ONLY, whether an external host is still allowed (always true under ALLOW_ANY). */
export function externalAllowed(t: L4Table, host: string | null): boolean {
  if (t.policy.mode === 'ALLOW_ANY') return true
  if (host === null) return false
  const h = host.toLowerCase()
  if (t.allowedExact.has(h)) return true
  for (const s of t.allowedSuffixes) if (h.endsWith(s) && h.length > s.length) return true
  return false
}
