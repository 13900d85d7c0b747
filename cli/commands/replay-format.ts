// The lines `remora apply --preview` and `remora check --replay` print for replayed edges: who
// calls which workload with what, the counts and when it was last seen, the decision with its rule.
import type { PreviewChange, ReplayedEdge, Verdict } from '../../control-plane/replay/index.js'
import { REPRESENTATIVE_ID } from '../../control-plane/replay/index.js'
import { callerName, printable } from './graph.js'

const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z')

type Replayed = Omit<ReplayedEdge, 'decision'>

/** `shop/frontend → shop/orders GET /orders/{id} (port 8080)`, or `… TCP port 5432`. */
export function edgeLabel(e: Replayed): string {
  const what = e.protocol === 'tcp' ? `TCP port ${e.port}` : `${e.method} ${printable(e.path)} (port ${e.port}${e.protocol === 'grpc' ? ', gRPC' : ''})`
  return `${printable(callerName(e.source))} → ${printable(e.destination.namespace)}/${printable(e.destination.workload)} ${what}`
}

export const verdictText = (v: Verdict): string => printable(v.reason)

const approx = (e: Replayed): string => (e.approximate ? ` [approximate: the recorded template was evaluated with {id} = ${REPRESENTATIVE_ID}]` : '')
const noun = (e: Replayed): string => (e.protocol === 'tcp' ? (e.count === 1 ? 'connection' : 'connections') : e.count === 1 ? 'request' : 'requests')

/** `newly denied: <edge> (N requests, last seen T): now <reason>; then <reason>`. */
export function changeLine(c: PreviewChange): string {
  const head = c.after.action === 'DENY' ? 'newly denied' : 'newly allowed'
  return `${head}: ${edgeLabel(c)} (${c.count} ${noun(c)}, last seen ${iso(c.lastSeen)})${approx(c)}\n    now:   ${verdictText(c.before)}\n    after: ${verdictText(c.after)}`
}

/** One line per replayed edge group, with what the sidecar recorded when it differs. */
export function replayLine(r: ReplayedEdge): string {
  const recorded = r.recorded.allow > 0 && r.recorded.deny > 0 ? 'mixed' : r.recorded.allow > 0 ? 'ALLOW' : 'DENY'
  const differs = recorded !== r.decision.action ? `  (recorded: ${recorded === 'mixed' ? `ALLOW ${r.recorded.allow}, DENY ${r.recorded.deny}` : recorded})` : ''
  return `${r.decision.action.padEnd(5)}  ${edgeLabel(r)}: ${r.count} ${noun(r)}, last seen ${iso(r.lastSeen)}  ${verdictText(r.decision)}${differs}${approx(r)}`
}
