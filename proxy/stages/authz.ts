import { evaluate, type RequestFacts, type WorkloadPolicy } from '../policy/index.js'
import { proxyError, type Handler, type RequestContext, type Stage } from '../pipeline/index.js'

export interface AuthzStageOptions {
  readonly policy: WorkloadPolicy
  /** Called with every decision (metrics); must not throw. */
  readonly onDecision?: (ctx: RequestContext) => void
}

/** Request facts for `evaluate()`; the path is already normalized by `sanitize`. */
export function requestFacts(ctx: RequestContext): RequestFacts {
  return {
    source: { principal: ctx.peer?.uri ?? null, namespace: ctx.peer?.namespace ?? null, ip: ctx.sourceIp },
    destination: { port: ctx.localPort },
    request: { method: ctx.method, host: ctx.authority, path: ctx.path, headers: ctx.req.headers, auth: null },
  }
}

// After authentication, before routing: a denied request never reaches the app. With no
// AuthorizationPolicy for the workload the stage is left out entirely (allow, nothing to evaluate).
export function createAuthzStage(opts: AuthzStageOptions): Stage {
  const { policy, onDecision } = opts
  return function authz(next: Handler): Handler {
    if (policy.authzPolicyCount === 0) return next
    return async function authzStage(ctx: RequestContext) {
      const decision = evaluate(policy, requestFacts(ctx))
      ctx.decision = decision
      onDecision?.(ctx)
      if (decision.action === 'DENY') throw proxyError('REMORA_ERR_AUTHZ_DENIED', decision.reason)
      return next(ctx)
    }
  }
}
