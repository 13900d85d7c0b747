import { TRAFFIC_LATENCY_BOUNDS_MS, TRAFFIC_LIMITS, type TrafficEdge, type TrafficReport } from '../snapshot/index.js'
import type { AccessLogEntry } from '../telemetry/access-log-entry.js'
import { templateOf } from './template.js'

/** The workload a sidecar reports for (reporter=destination). */
export interface TrafficDestination {
  readonly principal: string
  readonly namespace: string
  readonly workload: string
}

/** What the recorder held since the last take: counts are deltas. */
export interface TrafficBatch {
  readonly windowStart: number
  readonly windowEnd: number
  readonly edges: TrafficEdge[]
  readonly dropped: number
}

export interface TrafficRecorderOptions {
  /** The app's port: a request that reached no cluster and names no port was for it. */
  readonly defaultPort: () => number
  readonly clock: { now(): number }
  /** Edges held between takes (default TRAFFIC_LIMITS.maxEdges); past it, requests are counted in `dropped`. */
  readonly maxEdges?: number
}

export interface TrafficRecorder {
  /** One access-log entry; only inbound ones are recorded. Never throws. */
  record(e: AccessLogEntry): void
  /** The edges since the last take (or since start), and a fresh, empty table. */
  take(): TrafficBatch
  /** Puts back a batch that could not be delivered: merged into the table, within the same bound. */
  restore(b: TrafficBatch): void
  /** Edges held now. */
  readonly size: number
}

type Protocol = TrafficEdge['protocol']

/** One edge as it accumulates: the key fields, then the counters. */
interface Slot {
  readonly method: string
  readonly port: number
  readonly protocol: Protocol
  readonly decision: 'ALLOW' | 'DENY'
  readonly policy: string | null
  readonly rule: number | null
  /** false: a key the wire contract cannot carry (an odd method, a policy name over 253 bytes); its requests are counted as dropped. */
  readonly valid: boolean
  mtls: boolean
  count: number
  errors: number
  firstSeen: number
  lastSeen: number
  readonly latency: number[]
  /** Oldest first; at most TRAFFIC_LIMITS.maxDenials. */
  readonly denials: { at: number; reason: string }[]
  traceId: string | null
}

const BOUNDS = TRAFFIC_LATENCY_BOUNDS_MS
const SPIFFE_OR_EMPTY = /^$|^spiffe:\/\/[a-z0-9._-]+\/\S+$/
const METHOD = /^[A-Z_-]{0,16}$/
const TRACE_ID = /^[0-9a-f]{32}$/
const MAX_REASON = 512
const MAX_POLICY = 253
/** gRPC statuses that are the server's failure (as a 5xx is): UNKNOWN, DEADLINE_EXCEEDED, INTERNAL, UNAVAILABLE, DATA_LOSS. */
const GRPC_ERRORS = new Set([2, 4, 13, 14, 15])

const latencyBucket = (ms: number): number => {
  let i = 0
  while (i < BOUNDS.length && ms > BOUNDS[i]!) i++
  return i
}

const reasonOf = (r: string): string => (r.length > MAX_REASON ? `${r.slice(0, MAX_REASON - 3)}...` : r)

/**
 * The sidecar's traffic record: the inbound requests and connections it served, aggregated into
 * edges (source principal, method, path template, port, protocol, decision, policy, rule) and
 * bounded at maxEdges. Per request: one pass over the path for its template (a new string only
 * when a segment is replaced), two nested-map lookups and a short scan (no key string is built),
 * then a few additions. A raw path never leaves record(): only its
 * template (`/orders/{id}`) is kept, and the query was never in the entry.
 */
export function createTrafficRecorder(o: TrafficRecorderOptions): TrafficRecorder {
  const maxEdges = o.maxEdges ?? TRAFFIC_LIMITS.maxEdges
  const { clock, defaultPort } = o
  /** source principal → path template → the edges that differ in the other key fields. */
  let table = new Map<string, Map<string, Slot[]>>()
  let size = 0
  let dropped = 0
  let windowStart = clock.now()
  /** `inbound|<port>||` → port; cluster names come from config, so this stays small. */
  const clusterPorts = new Map<string, number>()

  const portOf = (e: AccessLogEntry): number => {
    if (e.destination_port !== undefined) return e.destination_port
    const c = e.upstream_cluster
    if (c === null) return defaultPort()
    let p = clusterPorts.get(c)
    if (p === undefined) {
      const m = /^inbound\|(\d+)\|/.exec(c)
      p = m ? Number(m[1]) : defaultPort()
      if (clusterPorts.size < 256) clusterPorts.set(c, p)
    }
    return p
  }

  /** The slot for a key, created when there is room; null when the table is full. */
  function slotFor(source: string, path: string, method: string, port: number, protocol: Protocol, decision: 'ALLOW' | 'DENY', policy: string | null, rule: number | null, now: number): Slot | null {
    let byPath = table.get(source)
    let slots = byPath?.get(path)
    if (slots !== undefined) {
      for (let i = 0; i < slots.length; i++) {
        const s = slots[i]!
        if (s.method === method && s.port === port && s.protocol === protocol && s.decision === decision && s.policy === policy && s.rule === rule) return s
      }
    }
    if (size >= maxEdges) return null
    const valid = SPIFFE_OR_EMPTY.test(source) && METHOD.test(method) && (policy === null || policy.length <= MAX_POLICY) && port >= 0 && port <= 65535
    const s: Slot = { method, port, protocol, decision, policy, rule, valid, mtls: false, count: 0, errors: 0, firstSeen: now, lastSeen: now, latency: new Array<number>(BOUNDS.length + 1).fill(0), denials: [], traceId: null }
    if (byPath === undefined) table.set(source, (byPath = new Map()))
    if (slots === undefined) byPath.set(path, (slots = []))
    slots.push(s)
    size++
    return s
  }

  function addDenial(s: Slot, at: number, reason: string): void {
    s.denials.push({ at, reason })
    if (s.denials.length > TRAFFIC_LIMITS.maxDenials) s.denials.shift()
  }

  return {
    get size() {
      return size
    },

    record(e) {
      if (e.direction !== 'inbound') return
      const tcp = e.protocol === 'TCP' || e.protocol === 'TLS'
      let decision: 'ALLOW' | 'DENY'
      if (e.authz_decision === 'ALLOW' || e.authz_decision === 'DENY') decision = e.authz_decision
      // No decision: authorization did not run. Refused before it (bad JWT, mTLS required, a path
      // that cannot be normalized) is a denial; otherwise no policy applies and the default allowed.
      else decision = e.error_code !== null && (e.response_code === 401 || e.response_code === 403 || e.response_code === 400) ? 'DENY' : 'ALLOW'
      const now = clock.now()
      const s = slotFor(
        e.downstream_peer_principal ?? '',
        tcp ? '' : templateOf(e.path),
        tcp ? '' : e.method,
        portOf(e),
        tcp ? 'tcp' : e.grpc_status !== undefined ? 'grpc' : 'http',
        decision,
        e.authz_policy,
        e.authz_rule ?? null,
        now,
      )
      if (s === null || !s.valid) {
        dropped++
        return
      }
      s.count++
      s.lastSeen = now
      s.latency[latencyBucket(e.duration_ms)]!++
      if (e.connection_security_policy === 'mutual_tls') s.mtls = true
      if (e.trace_id !== null) s.traceId = e.trace_id
      if (decision === 'DENY') addDenial(s, now, reasonOf(e.authz_reason ?? e.error_code ?? 'denied'))
      else if (e.response_code >= 500 || (e.grpc_status !== undefined && e.grpc_status !== null && GRPC_ERRORS.has(e.grpc_status)) || (tcp && (e.response_flags === 'UF' || e.response_flags === 'UC'))) s.errors++
    },

    take() {
      const now = clock.now()
      const edges: TrafficEdge[] = []
      for (const [source, byPath] of table) {
        for (const [path, slots] of byPath) {
          for (const s of slots) {
            if (!s.valid || s.count === 0) continue
            edges.push({
              source,
              method: s.method,
              path,
              port: s.port,
              protocol: s.protocol,
              decision: s.decision,
              policy: s.policy,
              rule: s.rule,
              mtls: s.mtls,
              count: s.count,
              errors: s.errors,
              firstSeen: s.firstSeen,
              lastSeen: s.lastSeen,
              latency: s.latency,
              denials: s.denials.slice().reverse(),
              traceId: s.traceId !== null && TRACE_ID.test(s.traceId) ? s.traceId : null,
            })
          }
        }
      }
      const b: TrafficBatch = { windowStart, windowEnd: now, edges, dropped }
      table = new Map()
      size = 0
      dropped = 0
      windowStart = now
      return b
    },

    restore(b) {
      windowStart = Math.min(windowStart, b.windowStart)
      dropped += b.dropped
      for (const e of b.edges) {
        const s = slotFor(e.source, e.path, e.method, e.port, e.protocol, e.decision, e.policy, e.rule, e.firstSeen)
        if (s === null || !s.valid) {
          dropped += e.count
          continue
        }
        s.count += e.count
        s.errors += e.errors
        s.firstSeen = Math.min(s.firstSeen, e.firstSeen)
        s.lastSeen = Math.max(s.lastSeen, e.lastSeen)
        s.mtls ||= e.mtls
        for (let i = 0; i < s.latency.length; i++) s.latency[i]! += e.latency[i] ?? 0
        // Restored denials are older than any recorded since: they go first (oldest first).
        const newer = s.denials.splice(0)
        for (const d of [...e.denials].reverse()) addDenial(s, d.at, d.reason)
        for (const d of newer) addDenial(s, d.at, d.reason)
        s.traceId ??= e.traceId
      }
    },
  }
}

/** The report for a batch, or null when there is nothing to say. */
export function trafficReport(destination: TrafficDestination, b: TrafficBatch): TrafficReport | null {
  if (b.edges.length === 0 && b.dropped === 0) return null
  return { destination: { ...destination }, windowStart: b.windowStart, windowEnd: b.windowEnd, edges: b.edges, dropped: b.dropped }
}

/** Back from a report to a batch (to restore it when it could not be delivered). */
export function batchOf(r: TrafficReport): TrafficBatch {
  return { windowStart: r.windowStart, windowEnd: r.windowEnd, edges: r.edges, dropped: r.dropped }
}
