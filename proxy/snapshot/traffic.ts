import { z } from 'zod'

// The traffic record's wire contract (issue 12): what a sidecar reports about the requests and
// connections it served as the destination (reporter=destination: it knows the verified caller and
// the decision), and what the control plane stores and serves. Aggregated and bounded: an edge is
// (source principal, method, path template, port, protocol, decision, policy, rule); no raw path,
// query, header, token or address is ever in it.

/** Latency bucket upper bounds (ms) of every edge's histogram; the last bucket is +Inf. */
export const TRAFFIC_LATENCY_BOUNDS_MS = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000] as const

export const TRAFFIC_LIMITS = {
  /** Edges one sidecar keeps between reports (past it, new edges are counted in `dropped`). */
  maxEdges: 2000,
  /** Recent denial reasons kept per edge. */
  maxDenials: 5,
  maxPathLength: 256,
} as const

export const TRAFFIC_PROTOCOLS = ['http', 'grpc', 'tcp'] as const

const spiffeOrEmpty = z.string().max(512).regex(/^$|^spiffe:\/\/[a-z0-9._-]+\/\S+$/, 'expected a SPIFFE ID or "" (unauthenticated)')
const count = z.number().int().min(0)

export const TrafficEdgeSchema = z.strictObject({
  /** The caller's verified SPIFFE ID; "" for a plaintext caller. */
  source: spiffeOrEmpty,
  /** "" for TCP. */
  method: z.string().max(16).regex(/^[A-Z_-]*$/),
  /** A path template (`/orders/{id}`), never a raw path; "" for TCP. */
  path: z.string().max(TRAFFIC_LIMITS.maxPathLength),
  port: z.number().int().min(0).max(65535),
  protocol: z.enum(TRAFFIC_PROTOCOLS),
  decision: z.enum(['ALLOW', 'DENY']),
  /** `namespace/name` of the deciding policy and its rule index; null for a default decision. */
  policy: z.string().max(253).nullable(),
  rule: z.number().int().min(0).nullable(),
  mtls: z.boolean(),
  count: count.min(1),
  /** Responses ≥ 500 or proxy failures (not denials). */
  errors: count,
  firstSeen: count,
  lastSeen: count,
  /** Counts per TRAFFIC_LATENCY_BOUNDS_MS bucket, then +Inf (length bounds + 1). */
  latency: z.array(count).length(TRAFFIC_LATENCY_BOUNDS_MS.length + 1),
  /** The most recent denials' reasons (bounded). */
  denials: z.array(z.strictObject({ at: count, reason: z.string().max(512) })).max(TRAFFIC_LIMITS.maxDenials),
  /** A recent sampled trace of this edge (hex), for the graph's link to Jaeger. */
  traceId: z.string().regex(/^[0-9a-f]{32}$/).nullable(),
})
export type TrafficEdge = z.output<typeof TrafficEdgeSchema>

/** One report: the edges a sidecar served since its last report (counts are deltas). */
export const TrafficReportSchema = z.strictObject({
  /** The reporting workload; the control plane checks it against the caller's certificate. */
  destination: z.strictObject({ principal: spiffeOrEmpty, namespace: z.string().max(63), workload: z.string().max(253) }),
  windowStart: count,
  windowEnd: count,
  edges: z.array(TrafficEdgeSchema).max(TRAFFIC_LIMITS.maxEdges),
  /** Requests or connections not recorded because the edge table was full. */
  dropped: count,
})
export type TrafficReport = z.output<typeof TrafficReportSchema>

/** The key that identifies an edge (everything but its counters). */
export function edgeKey(destination: string, e: Pick<TrafficEdge, 'source' | 'method' | 'path' | 'port' | 'protocol' | 'decision' | 'policy' | 'rule'>): string {
  return [destination, e.source, e.method, e.path, e.port, e.protocol, e.decision, e.policy ?? '', e.rule ?? ''].join('\u0000')
}

/** Adds `b` into `a` (same key): counts and histograms summed, first/last seen widened, newest denials and trace kept. */
export function mergeEdge(a: TrafficEdge, b: TrafficEdge): TrafficEdge {
  const denials = [...a.denials, ...b.denials].sort((x, y) => y.at - x.at).slice(0, TRAFFIC_LIMITS.maxDenials)
  return {
    ...a,
    count: a.count + b.count,
    errors: a.errors + b.errors,
    firstSeen: Math.min(a.firstSeen, b.firstSeen),
    lastSeen: Math.max(a.lastSeen, b.lastSeen),
    latency: a.latency.map((n, i) => n + (b.latency[i] ?? 0)),
    denials,
    mtls: a.mtls || b.mtls,
    traceId: b.lastSeen >= a.lastSeen ? (b.traceId ?? a.traceId) : (a.traceId ?? b.traceId),
  }
}

// Path templates: a segment that looks like an identifier becomes `{id}` (numbers, UUIDs, long hex,
// long mixed tokens, e-mail addresses), so `/orders/123` and `/orders/456` are one edge and no ID
// is ever stored. The query is never part of it.
const ID_SEGMENT = [
  /^\d+$/,
  /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i,
  /^[0-9a-f]{12,}$/i,
  /^[^@/]+@[^@/]+$/,
  /^(?=.*\d)[A-Za-z0-9_-]{16,}$/,
  /^(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9._~-]{8,}$/,
]

export function pathTemplate(path: string): string {
  const q = path.indexOf('?')
  const p = q === -1 ? path : path.slice(0, q)
  const out = p
    .split('/')
    .map((seg) => (seg !== '' && ID_SEGMENT.some((r) => r.test(seg)) ? '{id}' : seg))
    .join('/')
  return out.length > TRAFFIC_LIMITS.maxPathLength ? `${out.slice(0, TRAFFIC_LIMITS.maxPathLength - 3)}...` : out
}
