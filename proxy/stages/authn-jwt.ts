import type { JwtAuthenticator, JwtOutcome } from '../authn/index.js'
import { proxyError, type Handler, type RequestContext, type Stage } from '../pipeline/index.js'
import { removeCookie, removeParam } from '../authn/index.js'

export interface AuthnJwtStageOptions {
  /** null or no rules: the stage is left out. */
  readonly authenticator: JwtAuthenticator | null
  /** Called with every outcome (metrics: remora_jwt_results_total); must not throw. */
  readonly onResult?: (ctx: RequestContext, outcome: JwtOutcome) => void
}

const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/

function claimHeaderValue(claims: Record<string, unknown>, path: readonly string[]): string | null {
  let cur: unknown = claims
  for (const k of path) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return null
    cur = (cur as Record<string, unknown>)[k]
  }
  let v: string | null = null
  if (typeof cur === 'string') v = cur
  else if (typeof cur === 'number' || typeof cur === 'boolean') v = String(cur)
  else if (Array.isArray(cur) && cur.every((e) => typeof e === 'string' || typeof e === 'number' || typeof e === 'boolean')) v = cur.join(',')
  return v !== null && HEADER_VALUE.test(v) ? v : null
}

// After authnMtls, before authz: a request with an invalid token gets 401 (flag JW) and never
// reaches the app; a request without one passes unauthenticated and authz decides. Headers that
// carry JWT output are stripped from every request first, so a caller can never inject them.
export function createAuthnJwtStage(opts: AuthnJwtStageOptions): Stage {
  const a = opts.authenticator
  return function authnJwt(next: Handler): Handler {
    if (a === null || a.rules.length === 0) return next
    const outputs = a.outputHeaders
    return async function authnJwtStage(ctx: RequestContext) {
      const h = ctx.headers
      for (let i = 0; i < outputs.length; i++) delete h[outputs[i]!]
      const out = await a.authenticate({ rawHeaders: ctx.req.rawHeaders, query: ctx.query })
      opts.onResult?.(ctx, out)
      if (out.result === 'invalid') throw proxyError(out.code, out.detail)
      if (out.result === 'ok') {
        ctx.auth = out.auth
        for (const t of out.tokens) {
          const { rule, at, verified } = t
          if (!rule.forwardOriginalToken) {
            const l = at.location
            if (l.kind === 'header') delete h[l.name]
            else if (l.kind === 'param') ctx.query = removeParam(ctx.query, l.name)
            else {
              const c = h.cookie
              const left = typeof c === 'string' ? removeCookie(c, l.name) : null
              if (left === null) delete h.cookie
              else h.cookie = left
            }
          }
          if (rule.outputPayloadToHeader) h[rule.outputPayloadToHeader] = verified.payloadSegment
          for (const o of rule.outputClaimToHeaders) {
            const v = claimHeaderValue(verified.auth.claims, o.claim)
            if (v !== null) h[o.header] = v
          }
        }
      }
      return next(ctx)
    }
  }
}
