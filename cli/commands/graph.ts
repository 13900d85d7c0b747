// `remora graph [-n NS] [--since 24h] [--json]`: the service graph from the traffic record, one line
// per caller → callee workload: request rate over the window, error rate, p50/p99 from the
// latency histogram, mTLS, ALLOW/DENY counts, denials highlighted. The model (buildGraph) is what
// the web view draws too (control-plane/ui/assets/graph.js computes the same numbers in the browser).
import { parseArgs } from 'node:util'
import type { ObservedEdge } from '../../control-plane/replay/index.js'
import { parseSpiffeId } from '../../proxy/identity/index.js'
import { TRAFFIC_LATENCY_BOUNDS_MS } from '../../proxy/snapshot/index.js'
import { ADMIN_FLAGS, ADMIN_FLAGS_HELP, apiFailure, fetchTraffic, isApiReply, parseSince, resolveTarget } from '../admin-client.js'
import { isUsageError } from '../errors.js'

const USAGE = `usage: remora graph [-n NAMESPACE] [--since 24h] [--json] [--server URL --token T --ca FILE]

The service graph from the traffic record the sidecars report: one line per caller → callee
workload with requests per second over the window, error rate (5xx and proxy failures), p50/p99
latency, mTLS, and ALLOW/DENY counts; an edge with denials is marked DENIED with its latest reason.
-n keeps the edges into that namespace. --json prints the model (nodes, edges, their parts).

${ADMIN_FLAGS_HELP}`

export interface GraphNode {
  /** `namespace/workload`, or `(plaintext)` for callers without a verified identity. */
  readonly id: string
  readonly namespace: string | null
  readonly workload: string
}

/** One recorded edge as the graph's details show it (its rule, counts, denials). */
export interface GraphPart {
  readonly method: string
  readonly path: string
  readonly port: number
  readonly protocol: ObservedEdge['protocol']
  readonly decision: ObservedEdge['decision']
  readonly policy: string | null
  readonly rule: number | null
  readonly count: number
  readonly errors: number
  readonly lastSeen: number
}

export interface GraphEdge {
  readonly from: string
  readonly to: string
  readonly source: string
  readonly count: number
  readonly allow: number
  readonly deny: number
  readonly errors: number
  /** Requests (or connections) per second over the window. */
  readonly rps: number
  /** errors / count. */
  readonly errorRate: number
  /** Milliseconds, estimated from the histogram (linear within a bucket); null when nothing was timed. */
  readonly p50: number | null
  readonly p99: number | null
  /** all: every request was mTLS; some; none. */
  readonly mtls: 'all' | 'some' | 'none'
  readonly denials: readonly { at: number; reason: string }[]
  /** The most recent sampled trace of the edge (for the link to Jaeger). */
  readonly traceId: string | null
  readonly parts: readonly GraphPart[]
}

export interface Graph {
  readonly window: { readonly from: number; readonly to: number }
  readonly nodes: readonly GraphNode[]
  readonly edges: readonly GraphEdge[]
}

/**
 * The latency at quantile q from a histogram over TRAFFIC_LATENCY_BOUNDS_MS (+Inf last), as
 * Prometheus' histogram_quantile estimates it: linear within the bucket; the +Inf bucket reports the
 * last finite bound.
 */
export function quantile(hist: readonly number[], q: number): number | null {
  const total = hist.reduce((a, b) => a + b, 0)
  if (total === 0) return null
  const rank = q * total
  let before = 0
  for (let i = 0; i < hist.length; i++) {
    const n = hist[i]!
    if (n > 0 && before + n >= rank) {
      const upper = TRAFFIC_LATENCY_BOUNDS_MS[i]
      const lower = i === 0 ? 0 : TRAFFIC_LATENCY_BOUNDS_MS[i - 1]!
      if (upper === undefined) return lower
      return lower + ((upper - lower) * (rank - before)) / n
    }
    before += n
  }
  return TRAFFIC_LATENCY_BOUNDS_MS[TRAFFIC_LATENCY_BOUNDS_MS.length - 1]!
}

export const PLAINTEXT_NODE = '(plaintext)'

/**
 * The caller's node: the workload that serves under that identity when the record knows one, else
 * `namespace/service-account` from the SPIFFE ID (the service account names the workload in
 * remora's identities), else the ID itself.
 */
function sourceNode(principal: string, byPrincipal: ReadonlyMap<string, GraphNode>): GraphNode {
  if (principal === '') return { id: PLAINTEXT_NODE, namespace: null, workload: PLAINTEXT_NODE }
  const known = byPrincipal.get(principal)
  if (known) return known
  const id = parseSpiffeId(principal)
  if (id?.namespace && id.serviceAccount) return { id: `${id.namespace}/${id.serviceAccount}`, namespace: id.namespace, workload: id.serviceAccount }
  return { id: principal, namespace: null, workload: principal }
}

/** How a caller is named in the CLI's lines: `namespace/service-account`, `(plaintext)`, or the ID. */
export const callerName = (principal: string): string => sourceNode(principal, new Map()).id

/** The record as a graph of workloads: recorded edges summed per caller → callee. Pure. */
export function buildGraph(edges: readonly ObservedEdge[], window: { from: number; to: number }): Graph {
  const nodes = new Map<string, GraphNode>()
  const byPrincipal = new Map<string, GraphNode>()
  for (const e of edges) {
    const n = { id: `${e.destination.namespace}/${e.destination.workload}`, namespace: e.destination.namespace, workload: e.destination.workload }
    nodes.set(n.id, n)
    if (e.destination.principal) byPrincipal.set(e.destination.principal, n)
  }
  const seconds = Math.max(1, (window.to - window.from) / 1000)
  const groups = new Map<string, { from: GraphNode; to: string; source: string; parts: ObservedEdge[] }>()
  for (const e of edges) {
    const from = sourceNode(e.source, byPrincipal)
    nodes.set(from.id, from)
    const to = `${e.destination.namespace}/${e.destination.workload}`
    const k = `${from.id}\u0000${to}`
    const g = groups.get(k) ?? { from, to, source: e.source, parts: [] }
    g.parts.push(e)
    groups.set(k, g)
  }
  const out: GraphEdge[] = []
  for (const g of groups.values()) {
    const sum = (f: (e: ObservedEdge) => number): number => g.parts.reduce((a, e) => a + f(e), 0)
    const count = sum((e) => e.count)
    const errors = sum((e) => e.errors)
    const hist = g.parts.reduce<number[]>((h, e) => h.map((n, i) => n + (e.latency[i] ?? 0)), new Array<number>(TRAFFIC_LATENCY_BOUNDS_MS.length + 1).fill(0))
    const mtlsCount = sum((e) => (e.mtls ? e.count : 0))
    const newest = [...g.parts].sort((a, b) => b.lastSeen - a.lastSeen)
    out.push({
      from: g.from.id,
      to: g.to,
      source: g.source,
      count,
      allow: sum((e) => (e.decision === 'ALLOW' ? e.count : 0)),
      deny: sum((e) => (e.decision === 'DENY' ? e.count : 0)),
      errors,
      rps: count / seconds,
      errorRate: count === 0 ? 0 : errors / count,
      p50: quantile(hist, 0.5),
      p99: quantile(hist, 0.99),
      mtls: mtlsCount === count ? 'all' : mtlsCount === 0 ? 'none' : 'some',
      denials: g.parts
        .flatMap((e) => e.denials)
        .sort((a, b) => b.at - a.at)
        .slice(0, 10),
      traceId: newest.find((e) => e.traceId !== null)?.traceId ?? null,
      parts: newest.map((e) => ({ method: e.method, path: e.path, port: e.port, protocol: e.protocol, decision: e.decision, policy: e.policy, rule: e.rule, count: e.count, errors: e.errors, lastSeen: e.lastSeen })),
    })
  }
  out.sort((a, b) => a.from.localeCompare(b.from) || a.to.localeCompare(b.to))
  return { window, nodes: [...nodes.values()].sort((a, b) => a.id.localeCompare(b.id)), edges: out }
}

/**
 * Recorded strings (principals, paths, reasons) come from the network: control characters (an
 * ANSI escape that repaints the terminal, a newline that forges a line) are printed escaped.
 */
export function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

export function formatMs(ms: number | null): string {
  if (ms === null) return '-'
  if (ms >= 1000) return `${(ms / 1000).toFixed(ms >= 10_000 ? 0 : 1)}s`
  return ms >= 10 ? `${Math.round(ms)}ms` : `${ms.toFixed(1)}ms`
}

export const formatRps = (rps: number): string => (rps >= 100 ? rps.toFixed(0) : rps >= 1 ? rps.toFixed(1) : rps >= 0.001 || rps === 0 ? rps.toFixed(3) : '<0.001')
export const formatRate = (r: number): string => `${(r * 100).toFixed(r > 0 && r < 0.001 ? 2 : 1)}%`

/** The text form: a header, then one line per edge; `color` paints denials red (a terminal). */
export function formatGraph(g: Graph, o: { color: boolean }): string[] {
  const red = (s: string): string => (o.color ? `\u001b[31m${s}\u001b[0m` : s)
  const lines = [`window ${new Date(g.window.from).toISOString()} → ${new Date(g.window.to).toISOString()}: ${g.nodes.length} workloads, ${g.edges.length} edges`]
  if (g.edges.length === 0) return [...lines, 'no traffic recorded in this window']
  const names = g.edges.map((e) => `${printable(e.from)} → ${printable(e.to)}`)
  const width = Math.min(60, Math.max(...names.map((n) => n.length)))
  for (const [i, e] of g.edges.entries()) {
    const cols = [
      names[i]!.padEnd(width),
      `${formatRps(e.rps).padStart(7)} rps`,
      `err ${formatRate(e.errorRate).padStart(6)}`,
      `p50 ${formatMs(e.p50).padStart(6)}`,
      `p99 ${formatMs(e.p99).padStart(6)}`,
      e.mtls === 'all' ? 'mTLS     ' : e.mtls === 'some' ? 'mTLS part' : 'plaintext',
      `ALLOW ${String(e.allow).padStart(6)}`,
      `DENY ${String(e.deny).padStart(5)}`,
    ]
    const line = cols.join('  ')
    if (e.deny === 0) {
      lines.push(line)
      continue
    }
    const latest = e.denials[0]?.reason
    lines.push(red(`${line}  DENIED${latest ? `: ${printable(latest)}` : ''}`))
  }
  return lines
}

export async function run(argv: string[]): Promise<number> {
  let values
  try {
    values = parseArgs({ args: argv, options: { namespace: { type: 'string', short: 'n' }, since: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' }, ...ADMIN_FLAGS }, strict: true }).values
  } catch (err) {
    console.error(`remora graph: ${(err as Error).message}\n\n${USAGE}`)
    return 2
  }
  if (values.help) {
    console.log(USAGE)
    return 0
  }
  try {
    const since = parseSince(values.since)
    const r = await fetchTraffic(resolveTarget(values), { namespace: values.namespace, since })
    if (isApiReply(r)) return apiFailure('graph', r)
    const g = buildGraph(r.edges, r.window)
    if (values.json) console.log(JSON.stringify(g, null, 2))
    else for (const l of formatGraph(g, { color: process.stdout.isTTY === true && !process.env.NO_COLOR })) console.log(l)
    return 0
  } catch (err) {
    console.error(`remora graph: ${(err as Error).message}`)
    return isUsageError(err) ? 2 : 1
  }
}
