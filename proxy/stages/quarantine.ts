import { proxyError, type Handler, type RequestContext, type Stage } from '../pipeline/index.js'
import type { Decision } from '../policy/index.js'

/** The quarantined identities of one snapshot, compiled once (issue 12). */
export interface QuarantineSet {
  /** SPIFFE ID → "by <who>: <why>" (what a denial's reason says). */
  readonly identities: ReadonlyMap<string, string>
  /** This workload itself is quarantined: it may neither serve nor call anyone. */
  readonly self: boolean
  readonly selfReason: string
}

export const NO_QUARANTINE: QuarantineSet = { identities: new Map(), self: false, selfReason: '' }

function deny(ctx: RequestContext, reason: string): never {
  const d: Decision = { action: 'DENY', policy: 'quarantine', ruleIndex: null, reason, dryRun: [], audit: null }
  ctx.decision = d
  throw proxyError('REMORA_ERR_QUARANTINED', reason)
}

// Quarantine comes before every policy: inbound, a quarantined caller (or this workload, when it is
// the one quarantined) is refused before authentication and authorization; outbound, a quarantined
// workload calls nobody, and nobody calls a cluster whose every identity is quarantined. Absent
// from the chain when nothing is quarantined.
export function createQuarantineStage(q: QuarantineSet, direction: 'inbound' | 'outbound', clusterIdentities?: ReadonlyMap<string, readonly string[]>): Stage {
  return function quarantine(next: Handler): Handler {
    if (!q.self && q.identities.size === 0) return next
    return async function quarantineStage(ctx: RequestContext) {
      if (q.self) deny(ctx, `quarantined: this workload (${q.selfReason})`)
      if (direction === 'inbound') {
        const why = ctx.peer ? q.identities.get(ctx.peer.uri) : undefined
        if (why !== undefined) deny(ctx, `quarantined: ${ctx.peer!.uri} (${why})`)
      } else if (ctx.cluster !== null) {
        const ids = clusterIdentities?.get(ctx.cluster)
        if (ids && ids.length > 0 && ids.every((i) => q.identities.has(i))) deny(ctx, `quarantined: ${ids.join(', ')} (${q.identities.get(ids[0]!)})`)
      }
      return next(ctx)
    }
  }
}
