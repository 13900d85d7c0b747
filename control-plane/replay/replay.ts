import { compile, evaluate, evaluateConnection, selectForWorkload, type PolicyDocument, type RequestFacts, type WorkloadPolicy } from '../../proxy/policy/index.js'
import { parseSpiffeId } from '../../proxy/identity/index.js'
import { TRAFFIC_LIMITS, type TrafficEdge } from '../../proxy/snapshot/index.js'

/** One edge of the traffic record as `GET /v1/traffic` serves it: the destination workload and the edge. */
export interface ObservedEdge extends TrafficEdge {
  readonly destination: { readonly principal: string; readonly namespace: string; readonly workload: string }
}

/** What a replay decided for one edge (the Decision's fields the output needs). */
export interface Verdict {
  readonly action: 'ALLOW' | 'DENY'
  readonly policy: string | null
  readonly rule: number | null
  readonly reason: string
}

export interface ReplayOptions {
  readonly rootNamespace: string
  /**
   * The destination workload's labels, which decide the policies that apply to it. Default
   * `{ app: <workload> }`: the record names a workload, not its labels, and remora's sidecars
   * register a workload under its `app` label (demo, injection).
   */
  readonly labelsOf?: (destination: ObservedEdge['destination']) => Readonly<Record<string, string>>
}

/** The facts of a group of recorded edges that a replay cannot tell apart (everything but the recorded decision). */
export interface ReplayedEdge {
  readonly destination: ObservedEdge['destination']
  readonly source: string
  readonly method: string
  readonly path: string
  readonly port: number
  readonly protocol: TrafficEdge['protocol']
  readonly count: number
  readonly firstSeen: number
  readonly lastSeen: number
  /** What the sidecar decided when it served these requests (ALLOW and DENY counts). */
  readonly recorded: { readonly allow: number; readonly deny: number }
  readonly decision: Verdict
  /**
   * The record holds a path template, not the paths: a `{id}` segment is evaluated as `0`, and a
   * truncated template as it is, so an exact-path rule may decide otherwise for the real paths.
   * Headers, JWTs, hosts and addresses are not recorded either: rules on them see none.
   */
  readonly approximate: boolean
}

/** A group of edges whose decision the candidate changes. */
export interface PreviewChange extends Omit<ReplayedEdge, 'decision'> {
  readonly before: Verdict
  readonly after: Verdict
}

const ID_SEGMENT = '{id}'
/** A representative concrete value for a `{id}` segment of a template: a number is what most IDs are. */
export const REPRESENTATIVE_ID = '0'
const UNRECORDED_IP = '0.0.0.0'

const defaultLabels = (d: ObservedEdge['destination']): Record<string, string> => ({ app: d.workload })

/** The path a template stands for in a replay, and whether that is an approximation. */
export function concretePath(template: string): { path: string; approximate: boolean } {
  const segs = template.split('/')
  const ids = segs.some((s) => s === ID_SEGMENT)
  const truncated = template.length >= TRAFFIC_LIMITS.maxPathLength && template.endsWith('...')
  return { path: ids ? segs.map((s) => (s === ID_SEGMENT ? REPRESENTATIVE_ID : s)).join('/') : template, approximate: ids || truncated }
}

/** The request facts evaluate() gets for an HTTP or gRPC edge: the verified caller, method, path, port. */
export function edgeRequestFacts(e: Pick<ObservedEdge, 'destination' | 'source' | 'method' | 'path' | 'port'>): { facts: RequestFacts; approximate: boolean } {
  const id = e.source === '' ? null : parseSpiffeId(e.source)
  const { path, approximate } = concretePath(e.path)
  return {
    facts: {
      source: { principal: id?.uri ?? null, namespace: id?.namespace ?? null, ip: UNRECORDED_IP },
      destination: { port: e.port },
      request: { method: e.method, host: `${e.destination.workload}.${e.destination.namespace}`, path, headers: {}, auth: null },
    },
    approximate,
  }
}

/** The groups of a record a replay decides alike: same destination, caller, method, path, port and protocol. */
export function groupEdges(edges: readonly ObservedEdge[]): Omit<ReplayedEdge, 'decision' | 'approximate'>[] {
  const groups = new Map<string, Omit<ReplayedEdge, 'decision' | 'approximate'> & { recorded: { allow: number; deny: number } }>()
  for (const e of edges) {
    const k = [e.destination.namespace, e.destination.workload, e.destination.principal, e.source, e.method, e.path, e.port, e.protocol].join('\u0000')
    const g = groups.get(k)
    if (!g) {
      groups.set(k, {
        destination: e.destination,
        source: e.source,
        method: e.method,
        path: e.path,
        port: e.port,
        protocol: e.protocol,
        count: e.count,
        firstSeen: e.firstSeen,
        lastSeen: e.lastSeen,
        recorded: { allow: e.decision === 'ALLOW' ? e.count : 0, deny: e.decision === 'DENY' ? e.count : 0 },
      })
      continue
    }
    groups.set(k, {
      ...g,
      count: g.count + e.count,
      firstSeen: Math.min(g.firstSeen, e.firstSeen),
      lastSeen: Math.max(g.lastSeen, e.lastSeen),
      recorded: { allow: g.recorded.allow + (e.decision === 'ALLOW' ? e.count : 0), deny: g.recorded.deny + (e.decision === 'DENY' ? e.count : 0) },
    })
  }
  return [...groups.values()]
}

/** A compiled policy set and the per-workload selection, built once per replay. */
function decider(policies: readonly PolicyDocument[], o: ReplayOptions): (g: Omit<ReplayedEdge, 'decision' | 'approximate'>) => { decision: Verdict; approximate: boolean } {
  const set = compile(policies, { rootNamespace: o.rootNamespace })
  const labelsOf = o.labelsOf ?? defaultLabels
  const selected = new Map<string, WorkloadPolicy>()
  return (g) => {
    const labels = labelsOf(g.destination)
    const wk = `${g.destination.namespace}\u0000${JSON.stringify(Object.entries(labels).sort())}`
    let wp = selected.get(wk)
    if (!wp) {
      wp = selectForWorkload(set, { namespace: g.destination.namespace, labels })
      selected.set(wk, wp)
    }
    if (g.protocol === 'tcp') {
      const id = g.source === '' ? null : parseSpiffeId(g.source)
      const d = evaluateConnection(wp, { principal: id?.uri ?? null, namespace: id?.namespace ?? null, sourceIp: UNRECORDED_IP, destinationPort: g.port })
      return { decision: verdict(d), approximate: false }
    }
    const { facts, approximate } = edgeRequestFacts(g)
    return { decision: verdict(evaluate(wp, facts)), approximate }
  }
}

const verdict = (d: { action: 'ALLOW' | 'DENY'; policy: string | null; ruleIndex: number | null; reason: string }): Verdict => ({ action: d.action, policy: d.policy, rule: d.ruleIndex, reason: d.reason })

/** Every recorded edge (grouped) as `policies` would decide it now. Pure. */
export function replay(edges: readonly ObservedEdge[], policies: readonly PolicyDocument[], o: ReplayOptions): ReplayedEdge[] {
  const decide = decider(policies, o)
  return groupEdges(edges).map((g) => ({ ...g, ...decide(g) }))
}

const docKey = (d: PolicyDocument): string => `${d.kind}/${d.metadata.namespace}/${d.metadata.name}`

/** The policies in force with `candidate` applied as `remora apply` would: the same kind, namespace and name replaces. */
export function withCandidate(inForce: readonly PolicyDocument[], candidate: readonly PolicyDocument[]): PolicyDocument[] {
  const replaced = new Set(candidate.map(docKey))
  return [...inForce.filter((d) => !replaced.has(docKey(d))), ...candidate]
}

/** The edges whose decision changes from `inForce` to `inForce` + `candidate`, newly denied first, busiest first. Pure. */
export function previewChanges(edges: readonly ObservedEdge[], inForce: readonly PolicyDocument[], candidate: readonly PolicyDocument[], o: ReplayOptions): PreviewChange[] {
  const before = decider(inForce, o)
  const after = decider(withCandidate(inForce, candidate), o)
  const out: PreviewChange[] = []
  for (const g of groupEdges(edges)) {
    const b = before(g)
    const a = after(g)
    if (a.decision.action === b.decision.action) continue
    out.push({ ...g, before: b.decision, after: a.decision, approximate: a.approximate || b.approximate })
  }
  return out.sort((x, y) => (x.after.action === y.after.action ? y.count - x.count : x.after.action === 'DENY' ? -1 : 1))
}
