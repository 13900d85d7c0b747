import { evaluate, type RequestFacts, type WorkloadPolicy } from '../policy/index.js'
import { proxyError, type Handler, type RequestContext, type Stage } from '../pipeline/index.js'

export interface AuthzStageOptions {
  readonly policy: WorkloadPolicy
  /** The workload port the request is for (Istio's destination.port): the app's port, not the listener's. */
  readonly destinationPort: number
  /** Called with every decision (metrics); must not throw. */
  readonly onDecision?: (ctx: RequestContext) => void
}

/**
 * Headers as Envoy's matchers see them: a repeated header is its values joined with "," (Node's
 * `req.headers` joins with ", " and drops some duplicates). Built only when a name repeats.
 */
export function policyHeaders(raw: readonly string[], joined: Readonly<Record<string, string | string[] | undefined>>): Readonly<Record<string, string | string[] | undefined>> {
  let seen: Set<string> | null = null
  let dup = false
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!.toLowerCase()
    seen ??= new Set()
    if (seen.has(k)) {
      dup = true
      break
    }
    seen.add(k)
  }
  if (!dup) return joined
  const out: Record<string, string> = {}
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!.toLowerCase()
    out[k] = k in out ? `${out[k]},${raw[i + 1]}` : raw[i + 1]!
  }
  return out
}

/** Request facts for `evaluate()`; the path is already normalized by `sanitize`. */
export function requestFacts(ctx: RequestContext, destinationPort: number): RequestFacts {
  return {
    source: { principal: ctx.peer?.uri ?? null, namespace: ctx.peer?.namespace ?? null, ip: ctx.sourceIp },
    destination: { port: destinationPort },
    request: { method: ctx.method, host: ctx.authority, path: ctx.path, headers: policyHeaders(ctx.req.rawHeaders, ctx.req.headers), auth: ctx.auth },
  }
}

// After authentication, before routing: a denied request never reaches the app. With no
// AuthorizationPolicy for the workload the stage is left out entirely (allow, nothing to evaluate).
export function createAuthzStage(opts: AuthzStageOptions): Stage {
  const { policy, onDecision, destinationPort } = opts
  return function authz(next: Handler): Handler {
    if (policy.authzPolicyCount === 0) return next
    return async function authzStage(ctx: RequestContext) {
      const decision = evaluate(policy, requestFacts(ctx, destinationPort))
      ctx.decision = decision
      onDecision?.(ctx)
      if (decision.action === 'DENY') throw proxyError('REMORA_ERR_AUTHZ_DENIED', decision.reason)
      return next(ctx)
    }
  }
}
