import { evaluate, type RequestFacts, type WorkloadPolicy } from '../policy/index.js'
import { proxyError, type Handler, type RequestContext, type Stage } from '../pipeline/index.js'
import { HOP_BY_HOP as HOP_BY_HOP_FIELDS, isSidecarOwnedHeader } from '../engines/common/index.js'

export interface AuthzStageOptions {
  readonly policy: WorkloadPolicy
  /** The workload port the request is for (Istio's destination.port): the app's port, not the listener's. */
  readonly destinationPort: number
  /** Called with every decision (metrics); must not throw. */
  readonly onDecision?: (ctx: RequestContext) => void
}

// Hop-by-hop fields are not forwarded, yet policies may test them (`request.headers[upgrade]`), as
// Envoy's RBAC sees them: they come from the request as received.
const HOP_BY_HOP: ReadonlySet<string> = new Set([...HOP_BY_HOP_FIELDS, 'expect'])

/**
 * Headers as authorization sees them: those the app will receive (`ctx.headers`, after `sanitize`
 * and `authnJwt`), so a policy can never be satisfied by a header the sidecar strips or replaces
 * (`x-remora-*`, `x-envoy-*`, XFCC, JWT output headers) nor see another value than the app. A header
 * repeated on the wire is its copies joined with "," as Envoy's matchers see it, when the app gets
 * them all (node:http's ", " join); for a field both engines keep only the first of (Authorization,
 * Content-Type, User-Agent…) the policy sees that first copy, the one the app gets. Built only when
 * a name repeats, a hop-by-hop field is present, or a sidecar-owned name was sent (`remora check`
 * passes node's view of its header lines as `forwarded`; a sidecar has dropped those already).
 */
export function policyHeaders(raw: readonly string[], forwarded: Readonly<Record<string, string | string[] | undefined>>): Readonly<Record<string, string | string[] | undefined>> {
  let seen: Set<string> | null = null
  let special = false
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!.toLowerCase()
    seen ??= new Set()
    if (seen.has(k) || HOP_BY_HOP.has(k) || isSidecarOwnedHeader(k)) {
      special = true
      break
    }
    seen.add(k)
  }
  if (!special) return forwarded
  const copies = new Map<string, string[]>()
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!.toLowerCase()
    const l = copies.get(k)
    if (l) l.push(raw[i + 1]!)
    else copies.set(k, [raw[i + 1]!])
  }
  const out: Record<string, string | string[] | undefined> = { ...forwarded }
  for (const [k, vs] of copies) {
    // Already gone from what a sidecar forwards; `remora check` passes node's view of the raw lines.
    if (isSidecarOwnedHeader(k)) delete out[k]
    else if (HOP_BY_HOP.has(k)) out[k] = vs.join(',')
    else if (vs.length > 1) {
      const f = forwarded[k]
      // Forwarded as all the copies joined (not first-only, not replaced by the sidecar): Envoy's join.
      if (typeof f === 'string' && (f === vs.join(', ') || (k === 'cookie' && f === vs.join('; ')))) out[k] = vs.join(',')
    }
  }
  return out
}

/** Request facts for `evaluate()`; the path is already normalized by `sanitize`. */
export function requestFacts(ctx: RequestContext, destinationPort: number): RequestFacts {
  return {
    source: { principal: ctx.peer?.uri ?? null, namespace: ctx.peer?.namespace ?? null, ip: ctx.sourceIp },
    destination: { port: destinationPort },
    request: { method: ctx.method, host: ctx.authority, path: ctx.path, headers: policyHeaders(ctx.req.rawHeaders, ctx.headers), auth: ctx.auth },
  }
}

// After authentication, before routing: a denied request never reaches the app. With no
// AuthorizationPolicy for the workload the stage is left out entirely (allow, nothing to evaluate).
export function createAuthzStage(opts: AuthzStageOptions): Stage {
  const { policy, onDecision, destinationPort } = opts
  return function authz(next: Handler): Handler {
    if (policy.authzPolicyCount === 0) return next
    return async function authzStage(ctx: RequestContext) {
      // the port the caller asked for (SNI, or redirected from), else the app's default port
      const decision = evaluate(policy, requestFacts(ctx, ctx.originalDst?.port ?? destinationPort))
      ctx.decision = decision
      onDecision?.(ctx)
      if (decision.action === 'DENY') throw proxyError('REMORA_ERR_AUTHZ_DENIED', decision.reason)
      return next(ctx)
    }
  }
}
