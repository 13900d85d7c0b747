import { isIP } from 'node:net'
import { z } from 'zod'
import { PORT_PROTOCOLS } from './protocols.js'

// The outbound cluster as sidecar.yaml and the control plane's snapshots both carry it: one schema
// for the file and the wire, so a cluster the control plane sends is checked exactly as a static one.

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/

/** `500ms`, `15s`, `1m`, `24h` → ms, or null. */
export function parseDuration(v: string): number | null {
  const m = DURATION.exec(v)
  if (!m) return null
  const n = Number(m[1])
  const unit = m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : m[2] === 'm' ? 60_000 : 3_600_000
  return Math.round(n * unit)
}

/** `host:port` or `[v6]:port` (port 1-65535), or null. */
export function parseHostPort(v: string): { host: string; port: number } | null {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(v)
  if (!m) return null
  const p = Number(m[2])
  if (p < 1 || p > 65535) return null
  const host = m[1]!.startsWith('[') ? m[1]!.slice(1, -1) : m[1]!
  return { host, port: p }
}

export const durationSchema = z.string().refine((v) => parseDuration(v) !== null, { message: 'expected a duration like 500ms, 15s, 1m' })
export const hostPortSchema = z.string().refine((v) => parseHostPort(v) !== null, { message: 'expected host:port' })
const hostName = z.string().min(1).regex(/^[A-Za-z0-9*]([-A-Za-z0-9.*]*[A-Za-z0-9])?(:\d{1,5})?$/, 'expected a host name, optionally with :port')
const spiffeIdish = z.string().regex(/^spiffe:\/\/[a-z0-9._-]+\/\S+$/, 'expected a SPIFFE ID (spiffe://<trust-domain>/<path>)')

const ipAddress = z.string().refine((v) => isIP(v) !== 0, { message: 'expected an IPv4 or IPv6 address' })

/** A service port: what the app dials (`port`), where the workload listens (`targetPort`, default `port`), and its declared protocol. */
export const ClusterPortSchema = z.strictObject({
  port: z.number().int().min(1, 'expected a port 1-65535').max(65535, 'expected a port 1-65535'),
  targetPort: z.number().int().min(1, 'expected a port 1-65535').max(65535, 'expected a port 1-65535').optional(),
  /** Absent: detected from the first bytes (server-first well-known ports are TCP). */
  protocol: z.enum(PORT_PROTOCOLS).optional(),
  name: z.string().max(63).optional(),
})

export const ClusterSchema = z.strictObject({
  name: z.string().min(1).regex(/^[A-Za-z0-9._-]+$/, 'expected a cluster name like payments.shop'),
  hosts: z.array(hostName).min(1, 'expected at least one host'),
  endpoints: z.array(hostPortSchema),
  identities: z.array(spiffeIdish).min(1, 'expected at least one SPIFFE identity (secure naming)'),
  /** The service's virtual IPs (Kubernetes ClusterIPs): an intercepted connection to one of them is this cluster's, by original destination. */
  addresses: z.array(ipAddress).optional(),
  /** The service's ports. Absent: any port, protocol detected, forwarded to the workload's default app port. */
  ports: z.array(ClusterPortSchema).optional(),
  timeout: durationSchema.optional(),
  connectTimeout: durationSchema.optional(),
})

export const OUTBOUND_POLICY_MODES = ['ALLOW_ANY', 'REGISTRY_ONLY'] as const

/**
 * Istio's outboundTrafficPolicy: what happens to a connection or request for a destination outside
 * the mesh. ALLOW_ANY passes it through to its original destination; REGISTRY_ONLY refuses it
 * unless its host (TLS SNI or HTTP Host) is in `allowedHosts` (exact, or `*.example.com`).
 */
export const OutboundTrafficPolicySchema = z.strictObject({
  mode: z.enum(OUTBOUND_POLICY_MODES),
  allowedHosts: z.array(z.string().regex(/^(\*\.)?[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$/, 'expected a host name or *.domain')).default([]),
})
export type OutboundTrafficPolicy = z.output<typeof OutboundTrafficPolicySchema>

/**
 * A quarantined workload identity (issue 12): denied mesh-wide as caller and as callee, before any
 * policy, its certificate renewals refused. Who did it and why travel with it (status, logs).
 */
export const QuarantineEntrySchema = z.strictObject({
  identity: z.string().max(512).regex(/^spiffe:\/\/[a-z0-9._-]+\/\S+$/, 'expected a SPIFFE ID'),
  reason: z.string().max(512),
  by: z.string().max(128),
  since: z.string().max(40),
})
export type QuarantineEntry = z.output<typeof QuarantineEntrySchema>

export type ClusterConfig = z.output<typeof ClusterSchema>
export type ClusterPort = z.output<typeof ClusterPortSchema>
/** A cluster as the control plane writes it into a snapshot. */
export type SnapshotCluster = z.input<typeof ClusterSchema>

/** `clusters[0].endpoints[1]` from a zod path. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = ''
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`
    else out += out ? `.${String(seg)}` : String(seg)
  }
  return out || '(root)'
}
