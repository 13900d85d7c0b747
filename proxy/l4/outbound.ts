import net from 'node:net'
import type tls from 'node:tls'
import { createMtlsDialer, MESH_ALPN, negotiatedGroup, type CredentialStore } from '../tls/index.js'
import type { OriginalDst } from '../pipeline/index.js'
import type { AccessLogEntry, AccessLogSink } from '../telemetry/index.js'
import { UNKNOWN_WORKLOAD, type WorkloadLabels } from '../stages/index.js'
import type { Logger } from '../deps.js'
import { relay, type RelayResult } from './relay.js'
import { meshServername } from './sni.js'
import { externalAllowed, type L4Match, type L4Table } from './routes.js'
import type { TcpMetrics } from './metrics.js'
import type { HostAddresses } from './resolve.js'

// Outbound connections that are not HTTP: app TCP to a meshed destination crosses the pair inside
// mTLS (ALPN remora-tcp, the target port in the SNI, secure naming as for HTTP); TLS from the app
// rides inside it untouched; a destination outside the mesh is passed through to its original
// address (ALLOW_ANY) or refused (REGISTRY_ONLY). One access-log line per connection.

export const TCP_IDLE_MS = 3_600_000 // Envoy's tcp_proxy idle_timeout default: 1 h
const PASSTHROUGH: WorkloadLabels = { ...UNKNOWN_WORKLOAD, service: 'PassthroughCluster', serviceName: 'PassthroughCluster' }

export interface L4Env {
  readonly creds: CredentialStore
  readonly metrics: TcpMetrics
  readonly accessLog: AccessLogSink
  readonly logger: Logger
  readonly self: () => WorkloadLabels
  readonly idleMs?: number
  /** Resolves allowed external hosts under REGISTRY_ONLY (the destination must be one of theirs). */
  readonly hosts: HostAddresses
}

export interface TcpConnectionFacts {
  readonly direction: 'inbound' | 'outbound'
  readonly down: net.Socket
  readonly start: number
  readonly startMono: number
  readonly protocol: 'TCP' | 'TLS'
  readonly sni: string | null
  readonly cluster: string | null
  readonly upstream: string | null
}

export function tcpAccessLogEntry(f: TcpConnectionFacts, r: RelayResult | null, extra: Partial<AccessLogEntry>): AccessLogEntry {
  const e: AccessLogEntry = {
    start_time: new Date(f.start).toISOString(),
    direction: f.direction,
    method: '-',
    authority: f.sni ?? '-',
    path: '-',
    protocol: f.protocol,
    response_code: 0,
    response_flags: '-',
    error_code: null,
    duration_ms: Math.round((performance.now() - f.startMono) * 1000) / 1000,
    upstream_service_time_ms: null,
    bytes_received: r?.received ?? 0,
    bytes_sent: r?.sent ?? 0,
    upstream_cluster: f.cluster,
    upstream_host: f.upstream,
    downstream_remote_address: `${f.down.remoteAddress ?? ''}:${f.down.remotePort ?? 0}`,
    downstream_peer_principal: null,
    connection_security_policy: 'none',
    request_id: '',
    authz_decision: null,
    authz_policy: null,
    authz_reason: null,
    trace_id: null,
    span_id: null,
    ...extra,
  }
  if (f.sni !== null) e.requested_server_name = f.sni
  if (r !== null && r.end !== 'closed') e.detail = r.end
  return e
}

/** Resolves once the upstream is connected (TLS: handshaken), or rejects. */
function connected(s: net.Socket, secure: boolean, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      s.destroy()
      reject(new Error(`connect timeout after ${timeoutMs} ms`))
    }, timeoutMs)
    s.once(secure ? 'secureConnect' : 'connect', () => {
      clearTimeout(t)
      s.removeListener('error', onError)
      resolve()
    })
    const onError = (err: Error): void => {
      clearTimeout(t)
      reject(err)
    }
    s.once('error', onError)
  })
}

export class OutboundConnections {
  readonly #open = new Set<net.Socket>()
  constructor(private readonly env: L4Env) {}

  /** A connection to a meshed destination: mTLS to one of the cluster's sidecars. */
  async mesh(down: net.Socket, m: L4Match, protocol: 'TCP' | 'TLS', sni: string | null): Promise<void> {
    const c = m.cluster
    const start = Date.now()
    const startMono = performance.now()
    const n = c.endpoints.length
    const facts = { direction: 'outbound' as const, down, start, startMono, protocol, sni, cluster: c.name, upstream: null as string | null }
    if (n === 0) return this.#fail(down, { ...facts }, 'UH', 'REMORA_ERR_UPSTREAM_NO_HEALTHY', `cluster ${c.name} has no endpoints`)
    const address = c.endpoints[c.next++ % n]!
    if (c.next >= 1 << 30) c.next = 0
    const i = address.lastIndexOf(':')
    const host = address.startsWith('[') ? address.slice(1, address.indexOf(']')) : address.slice(0, i)
    const up = createMtlsDialer({ host, port: Number(address.slice(i + 1)), identities: c.identities, servername: meshServername(c.name, m.targetPort), alpn: [MESH_ALPN.tcp] }, this.env.creds)() as tls.TLSSocket
    up.pause()
    try {
      await connected(up, true, c.connectTimeoutMs)
    } catch (err) {
      up.destroy()
      return this.#fail(down, { ...facts, upstream: address }, 'UF', 'REMORA_ERR_UPSTREAM_CONNECT', (err as Error).message)
    }
    const ch = this.env.metrics.children('source', this.env.self(), c.labels, 'mutual_tls')
    await this.#relay(down, up, { ...facts, upstream: address }, ch, { connection_security_policy: 'mutual_tls', tls_group: negotiatedGroup(up) })
  }

  /** A destination outside the mesh: its original address (ALLOW_ANY, or an allowed host), else refused. */
  async external(down: net.Socket, t: L4Table, od: OriginalDst | null, protocol: 'TCP' | 'TLS', sni: string | null): Promise<void> {
    const start = Date.now()
    const startMono = performance.now()
    const target = od ? (od.family === 6 ? `[${od.address}]:${od.port}` : `${od.address}:${od.port}`) : null
    const facts = { direction: 'outbound' as const, down, start, startMono, protocol, sni, cluster: 'PassthroughCluster', upstream: target }
    // REGISTRY_ONLY lets a named host through only to that host's own addresses (the SNI is the app's to choose).
    const allowed = externalAllowed(t, sni) && (t.policy.mode === 'ALLOW_ANY' || (od !== null && sni !== null && (await this.env.hosts.has(sni, od.address))))
    if (!allowed) {
      this.env.metrics.refused(protocol === 'TLS' ? 'tls' : 'tcp')
      this.env.logger.info({ event: 'outbound_refused', policy: 'REGISTRY_ONLY', destination: target, sni }, 'outbound connection refused: destination is not in the mesh registry')
      return this.#fail(down, { ...facts, cluster: 'BlackHoleCluster' }, 'NR', 'REMORA_ERR_REGISTRY_ONLY', `REGISTRY_ONLY: ${sni ?? target ?? 'unknown destination'} is not a known service`)
    }
    if (od === null) return this.#fail(down, facts, 'NR', 'REMORA_ERR_ROUTE_NOT_FOUND', `no original destination and no cluster${sni ? ` for SNI ${sni}` : ''}`)
    const up = net.connect({ host: od.address, port: od.port, noDelay: true, allowHalfOpen: true })
    up.pause()
    try {
      await connected(up, false, 5_000)
    } catch (err) {
      up.destroy()
      return this.#fail(down, facts, 'UF', 'REMORA_ERR_UPSTREAM_CONNECT', (err as Error).message)
    }
    const ch = this.env.metrics.children('source', this.env.self(), PASSTHROUGH, 'unknown')
    await this.#relay(down, up, facts, ch, {})
  }

  /** Refused before any dial: this workload is quarantined, or every identity of the destination is. */
  quarantined(down: net.Socket, protocol: 'TCP' | 'TLS', sni: string | null, cluster: string | null, reason: string): void {
    const facts = { direction: 'outbound' as const, down, start: Date.now(), startMono: performance.now(), protocol, sni, cluster, upstream: null }
    try {
      down.resetAndDestroy()
    } catch {
      down.destroy()
    }
    this.env.accessLog(tcpAccessLogEntry(facts, null, { authz_decision: 'DENY', authz_policy: 'quarantine', authz_reason: reason, response_flags: 'AZ', error_code: 'REMORA_ERR_QUARANTINED' }))
  }

  async #relay(down: net.Socket, up: net.Socket, facts: TcpConnectionFacts, ch: ReturnType<TcpMetrics['children']>, extra: Partial<AccessLogEntry>): Promise<void> {
    this.#open.add(down)
    ch.opened.value++
    const r = await relay(down, up, this.env.idleMs ?? TCP_IDLE_MS)
    this.#open.delete(down)
    ch.closed.value++
    ch.sent.value += r.sent
    ch.received.value += r.received
    const flags = r.end === 'idle' ? 'SI' : r.end === 'upstream_error' ? 'UC' : r.end === 'downstream_error' ? 'DC' : '-'
    this.env.accessLog(tcpAccessLogEntry(facts, r, { ...extra, response_flags: flags }))
  }

  #fail(down: net.Socket, facts: TcpConnectionFacts, flag: string, code: string, detail: string): void {
    try {
      down.resetAndDestroy()
    } catch {
      down.destroy()
    }
    this.env.accessLog(tcpAccessLogEntry(facts, null, { response_flags: flag, error_code: code, detail }))
  }

  closeAll(): void {
    for (const s of this.#open) s.destroy()
  }
}
