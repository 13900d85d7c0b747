import net from 'node:net'
import { evaluateConnection, type Decision, type WorkloadPolicy } from '../policy/index.js'
import type { PeerIdentity } from '../identity/index.js'
import type { QuarantineSet, WorkloadLabels } from '../stages/index.js'
import type { L4Env } from './outbound.js'
import { TCP_IDLE_MS, tcpAccessLogEntry } from './outbound.js'
import { relay } from './relay.js'

// Inbound TCP: a peer sidecar's remora-tcp stream (mTLS, the target port in its SNI) or a plaintext
// connection redirected to the inbound listener that is not HTTP. Authorized on L4 facts only
// (evaluateConnection), then bytes both ways to the app's port on loopback.

export interface InboundTcpFacts {
  readonly peer: PeerIdentity | null
  readonly security: 'mutual_tls' | 'none'
  /** The app port the caller asked for. */
  readonly port: number
  readonly sni: string | null
}

export interface InboundTcpPolicy {
  readonly workloadPolicy: WorkloadPolicy
  /** The app's host on loopback (inbound.app's host). */
  readonly appHost: string
  readonly onDecision?: (d: Decision) => void
  readonly quarantine?: QuarantineSet
}

function sourceOf(peer: PeerIdentity | null): WorkloadLabels {
  if (!peer) return { workload: 'unknown', namespace: 'unknown', principal: 'unknown', app: 'unknown', service: 'unknown', serviceName: 'unknown' }
  const sa = peer.serviceAccount ?? 'unknown'
  return { workload: sa, namespace: peer.namespace ?? 'unknown', principal: peer.uri, app: sa, service: 'unknown', serviceName: 'unknown' }
}

export class InboundConnections {
  readonly #open = new Set<net.Socket>()
  constructor(private readonly env: L4Env) {}

  async accept(down: net.Socket, f: InboundTcpFacts, p: InboundTcpPolicy): Promise<void> {
    const start = Date.now()
    const startMono = performance.now()
    const cluster = `inbound|${f.port}||`
    const upstream = `${p.appHost}:${f.port}`
    const facts = { direction: 'inbound' as const, down, start, startMono, protocol: 'TCP' as const, sni: f.sni, cluster, upstream }
    const identity = { downstream_peer_principal: f.peer?.uri ?? null, connection_security_policy: f.security }
    const q = p.quarantine
    const quarantined = q === undefined ? null : q.self ? `quarantined: this workload (${q.selfReason})` : f.peer && q.identities.has(f.peer.uri) ? `quarantined: ${f.peer.uri} (${q.identities.get(f.peer.uri)})` : null
    if (quarantined !== null) {
      down.destroy()
      this.env.accessLog(tcpAccessLogEntry(facts, null, { ...identity, authz_decision: 'DENY', authz_policy: 'quarantine', authz_reason: quarantined, response_flags: 'AZ', error_code: 'REMORA_ERR_QUARANTINED' }))
      return
    }
    const decision = evaluateConnection(p.workloadPolicy, {
      principal: f.peer?.uri ?? null,
      namespace: f.peer?.namespace ?? null,
      sourceIp: down.remoteAddress ?? '',
      destinationPort: f.port,
      ...(f.sni ? { sni: f.sni } : {}),
    })
    p.onDecision?.(decision)
    const authz = { authz_decision: decision.action, authz_policy: decision.policy, authz_reason: decision.reason, ...(decision.ruleIndex !== null ? { authz_rule: decision.ruleIndex } : {}) }
    if (decision.action === 'DENY') {
      down.destroy()
      this.env.accessLog(tcpAccessLogEntry(facts, null, { ...identity, ...authz, response_flags: 'AZ', error_code: 'REMORA_ERR_AUTHZ_DENIED' }))
      return
    }
    const up = net.connect({ host: p.appHost, port: f.port, noDelay: true, allowHalfOpen: true })
    up.pause()
    const ok = await new Promise<Error | null>((resolve) => {
      up.once('connect', () => resolve(null))
      up.once('error', resolve)
    })
    if (ok !== null) {
      up.destroy()
      down.destroy()
      this.env.accessLog(tcpAccessLogEntry(facts, null, { ...identity, ...authz, response_flags: 'UF', error_code: 'REMORA_ERR_UPSTREAM_CONNECT', detail: ok.message }))
      return
    }
    const ch = this.env.metrics.children('destination', sourceOf(f.peer), this.env.self(), f.security)
    ch.opened.value++
    this.#open.add(down)
    const r = await relay(down, up, this.env.idleMs ?? TCP_IDLE_MS)
    this.#open.delete(down)
    ch.closed.value++
    ch.sent.value += r.sent
    ch.received.value += r.received
    const flags = r.end === 'idle' ? 'SI' : r.end === 'upstream_error' ? 'UC' : r.end === 'downstream_error' ? 'DC' : '-'
    this.env.accessLog(tcpAccessLogEntry(facts, r, { ...identity, ...authz, response_flags: flags }))
  }

  /** Closes open connections from a peer (quarantine) or all of them (shutdown). */
  closeAll(): void {
    for (const s of this.#open) s.destroy()
  }
}
